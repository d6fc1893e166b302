"""Reading and writing model checkpoints: `load_pretrained` dispatches on the layout."""

from __future__ import annotations

import os

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.checkpoints.hf import load_hf_checkpoint, save_hf_checkpoint
from jaxprompt.config import T5Config


def load_pretrained(path: str | os.PathLike, dtype=None) -> tuple[T5Config, dict]:
    """Loads a pretrained T5: returns (T5Config, params) for `jaxprompt.T5(config)`.

    Args:
      path: a Hugging Face T5 directory (config.json + model.safetensors, a sharded
        safetensors index, or pytorch_model.bin).
      dtype: cast the weights (e.g. jnp.bfloat16); None keeps the stored dtype.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file or directory. Pass a Hugging Face T5 "
                              "directory (config.json + model.safetensors).")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        return load_hf_checkpoint(path, dtype)
    raise CheckpointError(
        f"{path}: not a checkpoint jaxprompt can read. Expected a Hugging Face T5 directory "
        "with config.json and model.safetensors.")


__all__ = ["CheckpointError", "load_pretrained", "load_hf_checkpoint", "save_hf_checkpoint"]
