"""Reading and writing model checkpoints: `load_pretrained` dispatches on the layout."""

from __future__ import annotations

import json
import os

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.checkpoints.hf import load_hf_checkpoint, save_hf_checkpoint
from jaxprompt.checkpoints.t5x import is_t5x_checkpoint, load_t5x_checkpoint
from jaxprompt.config import T5Config


def _local_path(path: str) -> str:
    """ "tiny", a named model of an extra ("gemma-3-270m"), a Hub id (`org/name[@revision]`,
    jaxprompt.checkpoints.hub) or a path."""
    from jaxprompt.checkpoints.gguf_file import NAMED_MODELS, named_model

    if path in NAMED_MODELS:
        return named_model(path)
    if path in ("tiny", "t5_tiny_lm"):  # the embedded pretrained model (tools/pretrain_tiny.py)
        return os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "t5_tiny_lm"
        )
    from jaxprompt.checkpoints.hub import is_hub_id, resolve

    return resolve(path) if is_hub_id(path) else path


def model_vocabulary(model: str | os.PathLike | None, vocabulary: str | None = None) -> str:
    """The vocabulary for `model`: `vocabulary` if given, else the model directory's (or
    Hub snapshot's) own spiece.model, "byte" if its tokenizer_config.json names ByT5's
    tokenizer, else the bundled T5 vocabulary."""
    from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY
    from jaxprompt.decoder_config import DECODER_MODEL_TYPES

    if vocabulary:
        return vocabulary
    if model is not None and not os.fspath(model).startswith("gs://"):
        from jaxprompt.checkpoints.gguf_file import find_gguf

        path = _local_path(os.fspath(model))
        gguf = find_gguf(path)
        if gguf is not None:
            return gguf  # the tokenizer is in the file's metadata
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.exists(os.path.join(directory, "tokenizer.json")) and not os.path.exists(
            os.path.join(directory, "spiece.model")
        ):
            return os.path.join(directory, "tokenizer.json")
        own = os.path.join(directory, "spiece.model")
        if os.path.exists(own):
            return own
        if _json_field(directory, "tokenizer_config.json", "tokenizer_class") == "ByT5Tokenizer":
            from jaxprompt.data.vocabulary import BYTE_VOCABULARY

            return BYTE_VOCABULARY
        if _json_field(directory, "config.json", "model_type") in DECODER_MODEL_TYPES:
            raise CheckpointError(
                f"{directory}: a decoder-only checkpoint without its tokenizer (no "
                "tokenizer.json): copy the model's tokenizer.json beside config.json, or "
                "pass --vocabulary path/to/tokenizer.json."
            )
    return DEFAULT_VOCABULARY


def _json_field(directory: str, name: str, key: str):
    """`key` of the JSON object in directory/name; None if unreadable or absent."""
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value.get(key) if isinstance(value, dict) else None


def read_model_shapes(path: str | os.PathLike) -> tuple[T5Config, str]:
    """(architecture, stored weight dtype) of a model without reading its weights: a preset
    name (e.g. "t5_1_1_lm100k_xxl": float32; "gemma3_27b": bfloat16), "tiny", a Hugging
    Face directory (config.json and the safetensors header), a GGUF file (its metadata) or
    a T5X checkpoint (its msgpack and array metadata)."""
    import numpy as np

    from jaxprompt.checkpoints.hf import load_hf_config, stored_dtype
    from jaxprompt.checkpoints.t5x import t5x_shapes
    from jaxprompt.config import PRESETS
    from jaxprompt.decoder_config import DECODER_PRESETS

    path = _local_path(os.fspath(path))
    if path in PRESETS:
        return PRESETS[path], "float32"
    if path in DECODER_PRESETS:  # Gemma 3, Llama 3, Qwen 3 publish bfloat16 weights
        return DECODER_PRESETS[path], "bfloat16"
    if not path.startswith("gs://") and not os.path.exists(path):
        raise CheckpointError(
            f"{path}: no such file or directory, nor a preset name "
            f"({', '.join([*PRESETS, *DECODER_PRESETS])})."
        )
    from jaxprompt.checkpoints.gguf_file import find_gguf, gguf_config

    if find_gguf(path):
        return gguf_config(find_gguf(path)), "float32"  # dequantized on loading
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        return load_hf_config(path), stored_dtype(path)
    if path.startswith("gs://") or is_t5x_checkpoint(path):
        config, dtype = t5x_shapes(path)
        return config, str(np.dtype(dtype))
    raise CheckpointError(
        f"{path}: not a checkpoint jaxprompt can read (a Hugging Face T5 "
        "directory, a T5X checkpoint or a preset name)."
    )


def load_pretrained(
    path: str | os.PathLike, dtype=None, config: T5Config | None = None, shardings=None
) -> tuple[T5Config, dict]:
    """Loads a pretrained model: (T5Config, params) for `jaxprompt.T5(config)`, or
    (DecoderConfig, params) for a decoder-only LM (jaxprompt.models.decoder).

    Args:
      path: "tiny" (jaxprompt's embedded pretrained T5), "gemma-3-270m" (the `gemma`
        extra's GGUF), a GGUF file or a directory holding one, a Hugging Face Hub id
        ("google/t5-base-lm-adapt", "org/name@revision": resolved through the local cache,
        downloaded if missing), a Hugging Face T5 directory
        or decoder-only (Gemma 3, Llama, Qwen 2/3) directory (config.json + model.safetensors,
        a sharded safetensors index, or pytorch_model.bin), or a T5X checkpoint (a `checkpoint_N`
        directory or its msgpack file; `gs://` paths via tensorstore's GCS driver).
      dtype: cast the weights (e.g. jnp.bfloat16); None keeps the stored dtype.
      config: for T5X checkpoints, which store no config: the architecture (e.g. a preset);
        None infers it from the shapes.
      shardings: for T5X checkpoints, a tree of shardings: each process reads only its slices.
    """
    path = _local_path(os.fspath(path))
    if path.startswith("gs://"):
        return load_t5x_checkpoint(path, config, dtype, shardings)
    if not os.path.exists(path):
        raise CheckpointError(
            f"{path}: no such file or directory. Pass a Hugging Face T5 "
            "directory (config.json + model.safetensors), a Hub id "
            "(org/name[@revision]) or a T5X checkpoint."
        )
    from jaxprompt.checkpoints.gguf_file import find_gguf, load_gguf

    if find_gguf(path):
        return load_gguf(find_gguf(path), dtype)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        return load_hf_checkpoint(path, dtype)
    if is_t5x_checkpoint(path):
        return load_t5x_checkpoint(path, config, dtype, shardings)
    raise CheckpointError(
        f"{path}: not a checkpoint jaxprompt can read. Expected a Hugging Face T5 directory "
        "with config.json and model.safetensors, or a T5X checkpoint (checkpoint_N/checkpoint)."
    )


__all__ = [
    "CheckpointError",
    "load_pretrained",
    "model_vocabulary",
    "load_hf_checkpoint",
    "load_t5x_checkpoint",
    "read_model_shapes",
    "save_hf_checkpoint",
]
