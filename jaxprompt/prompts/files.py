"""Reading prompts from every format jaxprompt writes or others release.

Formats (detected from the path):
  peft         a PEFT PROMPT_TUNING adapter directory (adapter_config.json + adapter_model
               .safetensors / .bin); with num_transformer_submodules=2 only the first
               num_virtual_tokens rows reach a T5 encoder, so only those are returned.
  torch        a .pt/.pth/.bin file (torch.load(weights_only=True)): a tensor, or a dict
               holding "prompt_embeddings" or "prompt".
  npy          .npy, or numpy files without suffix (google-research/prompt-tuning's).
  safetensors  a single tensor ("prompt" or "prompt_embeddings").
  t5x          a T5X checkpoint (directory or msgpack file) with
               target/encoder/prompt/prompt/prompt.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from jaxprompt.checkpoints.errors import PARSE_ERRORS, CheckpointError

logger = logging.getLogger(__name__)

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
T5X_PROMPT_PATH = ("encoder", "prompt", "prompt", "prompt")
PROMPT_KEYS = ("prompt_embeddings", "prompt")


class PromptFileError(ValueError):
    """A prompt file that cannot be read; names the file and what to do."""


class UnreadablePromptFile(PromptFileError):
    """The file's format could not be parsed; the message may quote the file (the server
    answers without it)."""


def detect_format(path: str) -> str:
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, PEFT_CONFIG)):
            return "peft"
        if os.path.exists(os.path.join(path, "checkpoint")):
            return "t5x"
        raise PromptFileError(
            f"{path}: a directory without {PEFT_CONFIG} (PEFT) or checkpoint "
            "(T5X); pass the prompt file itself."
        )
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        return "npy"
    if extension == ".safetensors":
        return "safetensors"
    if extension in (".pt", ".pth", ".bin"):
        return "torch"
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"\x93NUMPY"):
        return "npy"
    if (magic and (0x80 <= magic[0] <= 0x8F or magic[0] in (0xDE, 0xDF))) or os.path.basename(
        path
    ) == "checkpoint":
        return "t5x"
    if magic[:2] == b"PK":  # torch's zip archive
        return "torch"
    raise PromptFileError(
        f"{path}: unknown prompt format; use .npy, .safetensors, .pt, a PEFT "
        "adapter directory or a T5X checkpoint."
    )


def _torch_load(path: str):
    try:
        import torch
    except ImportError as e:
        raise PromptFileError(f"{path} is a PyTorch file; install torch to read it.") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError and friends
        from jaxprompt.checkpoints.hf import refusal_reason

        raise PromptFileError(
            f"{path}: torch.load(weights_only=True) refused the file ({refusal_reason(e)}). "
            "jaxprompt never unpickles arbitrary objects."
        ) from e


def _to_numpy(value, path: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().float().cpu().numpy()
    if isinstance(value, dict):
        for key in PROMPT_KEYS:
            if key in value:
                return _to_numpy(value[key], path)
        raise PromptFileError(f"{path}: no {' or '.join(PROMPT_KEYS)} in {sorted(value)}.")
    return np.asarray(value)


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from jaxprompt.checkpoints.safetensors_io import SafetensorsFile

    reader = SafetensorsFile(path)
    return {name: np.array(reader.get(name)) for name in reader.keys()}


def _read_peft(path: str) -> np.ndarray:
    with open(os.path.join(path, PEFT_CONFIG)) as f:
        config = json.load(f)
    if config.get("peft_type") != "PROMPT_TUNING":
        raise PromptFileError(
            f"{path}: a PEFT {config.get('peft_type')} adapter, not "
            "PROMPT_TUNING; jaxprompt reads prompt-tuning adapters only."
        )
    weights = next(
        (os.path.join(path, w) for w in PEFT_WEIGHTS if os.path.exists(os.path.join(path, w))), None
    )
    if weights is None:
        raise PromptFileError(f"{path}: no {' or '.join(PEFT_WEIGHTS)}.")
    if config.get("task_type") not in ("SEQ_2_SEQ_LM", "CAUSAL_LM"):
        logger.warning(
            "%s: adapter_config.json has task_type %r, neither 'SEQ_2_SEQ_LM' (T5) nor "
            "'CAUSAL_LM' (decoder-only LMs): PEFT itself would silently ignore this prompt "
            "(jaxprompt reads it; jaxprompt export always writes the task_type).",
            path,
            config.get("task_type"),
        )
    tensors = (
        _read_safetensors(weights) if weights.endswith(".safetensors") else _torch_load(weights)
    )
    prompt = _to_numpy(tensors, weights)
    tokens = int(config.get("num_virtual_tokens", prompt.shape[0]))
    submodules = int(config.get("num_transformer_submodules") or 1)
    if prompt.shape[0] != tokens * submodules:
        raise PromptFileError(
            f"{weights}: prompt_embeddings has {prompt.shape[0]} rows; "
            f"adapter_config.json implies {tokens} x {submodules}."
        )
    if submodules > 1:
        logger.info(
            "%s: num_transformer_submodules=%d; keeping the first %d rows (the part "
            "PEFT prepends to a T5 encoder).",
            path,
            submodules,
            tokens,
        )
    return prompt[:tokens]


def _read_t5x(path: str) -> np.ndarray:
    from flax import serialization

    file = os.path.join(path, "checkpoint") if os.path.isdir(path) else path
    with open(file, "rb") as f:
        tree = serialization.msgpack_restore(f.read())
    node = tree.get("optimizer", {}).get("target", tree) if isinstance(tree, dict) else None
    for key in T5X_PROMPT_PATH:
        if not isinstance(node, dict) or key not in node:
            raise PromptFileError(
                f"{file}: no target/{'/'.join(T5X_PROMPT_PATH)} in this T5X checkpoint."
            )
        node = node[key]
    return np.asarray(node)


def _read(path: str, fmt: str) -> np.ndarray:
    if fmt == "peft":
        return _read_peft(path)
    if fmt == "torch":
        return _to_numpy(_torch_load(path), path)
    if fmt == "npy":
        return np.load(path, allow_pickle=False)
    if fmt == "safetensors":
        tensors = _read_safetensors(path)
        if not tensors:
            raise PromptFileError(f"{path}: holds no tensor.")
        return _to_numpy(tensors if len(tensors) > 1 else next(iter(tensors.values())), path)
    return _read_t5x(path)


def load_prompt(path: str | os.PathLike, d_model: int | None = None) -> np.ndarray:
    """Reads a prompt in any supported format as float32 [P, H], checked against d_model."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PromptFileError(f"{path}: no such prompt file or directory.")
    fmt = detect_format(path)
    try:
        prompt = _read(path, fmt)
    except CheckpointError:  # a corrupt safetensors file: the reader's own error, as before
        raise
    except PromptFileError as e:
        raise UnreadablePromptFile(str(e)) from None
    except PARSE_ERRORS as e:
        raise UnreadablePromptFile(
            f"{path}: cannot read this {fmt} prompt file, it is corrupt or "
            f"not a prompt ({type(e).__name__}: {str(e)[:200]})."
        ) from None
    if not isinstance(prompt, np.ndarray):
        raise PromptFileError(f"{path}: holds a {type(prompt).__name__}, not an array.")
    if prompt.ndim != 2:
        raise PromptFileError(f"{path}: a prompt is [P, H]; found shape {prompt.shape}.")
    if 0 in prompt.shape:
        raise PromptFileError(
            f"{path}: an empty prompt (shape {prompt.shape}); a prompt has "
            "at least one row of d_model values."
        )
    if not np.issubdtype(prompt.dtype, np.number) or np.iscomplexobj(prompt):
        raise PromptFileError(f"{path}: a prompt holds real numbers; found dtype {prompt.dtype}.")
    if d_model is not None:
        check_width(prompt, d_model, path)
    prompt = prompt.astype(np.float32)
    check_finite(prompt, path)
    return prompt


def check_finite(prompt: np.ndarray, path: str) -> None:
    """Raises PromptFileError naming the first NaN or infinite entry of a prompt [P, H]."""
    bad = np.argwhere(~np.isfinite(prompt))
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise PromptFileError(
            f"{path}: the prompt holds {len(bad)} non-finite value(s) (NaN or "
            f"inf); the first is {prompt[row, column]} at row {row}, column "
            f"{column}. A prompt from a diverged run cannot be used."
        )


def check_width(prompt: np.ndarray, d_model: int, path: str) -> None:
    """Raises PromptFileError unless the prompt [P, H] has H == d_model."""
    if prompt.shape[1] != d_model:
        raise PromptFileError(
            f"{path}: prompt width {prompt.shape[1]} does not match the "
            f"model's d_model {d_model}; this prompt was trained for another "
            "model size."
        )
