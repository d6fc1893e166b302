"""Writing a prompt [P, H] for other tools: PEFT, torch, numpy, safetensors, T5X.

Every writer is jaxprompt's own (json + safetensors + numpy); torch is needed only for
the `.pt` format. `jaxprompt.prompt_files.load_prompt` reads each format back.
"""

from __future__ import annotations

import json
import os

import numpy as np

from jaxprompt.checkpoints.safetensors_io import write_safetensors
from jaxprompt.prompts.files import PEFT_CONFIG

FORMATS = ("peft", "torch", "npy", "safetensors", "t5x")


def peft_adapter_config(prompt_length: int, d_model: int, config, base_model: str | None) -> dict:
    """adapter_config.json of a PEFT PROMPT_TUNING adapter: SEQ_2_SEQ_LM for T5 (without it
    PEFT silently ignores the prompt), CAUSAL_LM for a decoder-only LM; a T5 without a
    config."""
    from jaxprompt.models.family import family_of

    return {
        "peft_type": "PROMPT_TUNING",
        "task_type": family_of(config).peft_task_type if config else "SEQ_2_SEQ_LM",
        "num_virtual_tokens": prompt_length,
        "token_dim": d_model,
        # One block of rows: PEFT prepends the first num_virtual_tokens rows to the inputs.
        "num_transformer_submodules": 1,
        "num_layers": config.num_layers if config else None,
        "num_attention_heads": config.num_heads if config else None,
        "base_model_name_or_path": base_model,
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "tokenizer_name_or_path": None,
        "inference_mode": True,
        "revision": None,
        "modules_to_save": None,
        "auto_mapping": None,
    }


def export_prompt(
    prompt,
    fmt: str,
    out: str | os.PathLike,
    *,
    config=None,
    base_model: str | None = None,
    step: int = 0,
) -> str:
    """Writes `prompt` [P, H] in format `fmt` to `out`; returns the written path.

    peft: a directory for `peft.PeftModel.from_pretrained(t5_model, out)`.
    torch: a .pt dict {"prompt_embeddings": tensor, "metadata": {...}}.
    npy: google-research/prompt-tuning's released-prompt format.
    safetensors: one tensor "prompt_embeddings".
    t5x: a T5X checkpoint directory (`checkpoint_<step>/checkpoint`) holding
      target/encoder/prompt/prompt/prompt, as t5x's prompt-tuning recipes name it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; choose one of {FORMATS}.")
    prompt = np.ascontiguousarray(np.asarray(prompt, dtype=np.float32))
    if prompt.ndim != 2:
        raise ValueError(f"A prompt is [P, H]; got shape {prompt.shape}.")
    if config is not None and prompt.shape[1] != config.d_model:
        raise ValueError(f"Prompt width {prompt.shape[1]} != the model's d_model {config.d_model}.")
    out = os.fspath(out)
    metadata = {
        "format": "jaxprompt",
        "prompt_length": str(prompt.shape[0]),
        "d_model": str(prompt.shape[1]),
        "base_model": base_model or "",
    }
    if fmt == "peft":
        os.makedirs(out, exist_ok=True)
        write_safetensors(
            os.path.join(out, "adapter_model.safetensors"),
            {"prompt_embeddings": prompt},
            metadata={"format": "pt"},
        )
        with open(os.path.join(out, PEFT_CONFIG), "w") as f:
            json.dump(
                peft_adapter_config(prompt.shape[0], prompt.shape[1], config, base_model),
                f,
                indent=2,
            )
        return out
    _make_parent(out)
    if fmt == "npy":
        np.save(out, prompt)
        return out if out.endswith(".npy") else out + ".npy"
    if fmt == "safetensors":
        write_safetensors(out, {"prompt_embeddings": prompt}, metadata=metadata)
        return out
    if fmt == "torch":
        import torch

        torch.save(
            {"prompt_embeddings": torch.from_numpy(prompt.copy()), "metadata": metadata}, out
        )
        return out
    from flax import serialization

    directory = os.path.join(out, f"checkpoint_{step}")
    os.makedirs(directory, exist_ok=True)
    tree = {
        "version": 3,
        "optimizer": {
            "target": {"encoder": {"prompt": {"prompt": {"prompt": prompt}}}},
            "state": {"step": np.asarray(step, np.int32)},
        },
    }
    with open(os.path.join(directory, "checkpoint"), "wb") as f:
        f.write(serialization.msgpack_serialize(tree))
    return directory


def _make_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
