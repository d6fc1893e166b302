"""Hugging Face T5 directories (config.json + safetensors or pytorch_model.bin) <-> Flax tree.

One name table (`hf_parameter_map`) serves both directions. Torch Linear weights
[out, in] become Flax kernels [in, out]; the relative attention bias lives in
block 0 of each stack ([buckets, heads] -> [heads, buckets]); T5 folds the
1/sqrt(d_kv) query scaling into its initialisation, so no weight is rescaled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Iterator

import jax
import ml_dtypes
import numpy as np
from flax import traverse_util

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.checkpoints.safetensors_io import SafetensorsFile, write_safetensors
from jaxprompt.config import T5Config
from jaxprompt.models.t5 import param_shapes

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"

# Alternative names transformers may use for the shared embedding.
_EMBEDDING_ALIASES = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


@dataclasses.dataclass(frozen=True)
class MappedParam:
    hf_name: str
    flax_path: tuple[str, ...]
    transpose: bool


def refusal_reason(error: Exception) -> str:
    """What torch.load(weights_only=True) objected to (e.g. "Unsupported global: GLOBAL
    os.system"), without torch's advice to retry with weights_only=False."""
    import re

    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL \S+", text) or re.search(
        r"WeightsUnpickler error: [^\n.]*", text
    )
    return found.group(0).strip() if found else type(error).__name__


def hf_parameter_map(config: T5Config) -> list[MappedParam]:
    """Every parameter of `config` as (transformers name, Flax path, transpose?)."""
    entries = [MappedParam("shared.weight", ("token_embedder", "embedding"), False)]
    mlp_names = ("wi_0", "wi_1", "wo") if config.is_gated else ("wi", "wo")
    attention_names = {"q": "query", "k": "key", "v": "value", "o": "out"}

    def attention(hf_prefix, flax_prefix):
        return [
            MappedParam(f"{hf_prefix}.{hf}.weight", flax_prefix + (flax, "kernel"), True)
            for hf, flax in attention_names.items()
        ]

    def mlp(hf_prefix, flax_prefix):
        return [
            MappedParam(
                f"{hf_prefix}.DenseReluDense.{name}.weight",
                flax_prefix + ("mlp", name, "kernel"),
                True,
            )
            for name in mlp_names
        ]

    def norm(hf_name, flax_prefix, flax_name):
        return MappedParam(hf_name, flax_prefix + (flax_name, "scale"), False)

    for i in range(config.num_layers):
        hf, fx = f"encoder.block.{i}.layer", ("encoder", f"layers_{i}")
        entries += attention(f"{hf}.0.SelfAttention", fx + ("attention",))
        entries.append(norm(f"{hf}.0.layer_norm.weight", fx, "pre_attention_layer_norm"))
        entries += mlp(f"{hf}.1", fx)
        entries.append(norm(f"{hf}.1.layer_norm.weight", fx, "pre_mlp_layer_norm"))
    for i in range(config.num_decoder_layers):
        hf, fx = f"decoder.block.{i}.layer", ("decoder", f"layers_{i}")
        entries += attention(f"{hf}.0.SelfAttention", fx + ("self_attention",))
        entries.append(norm(f"{hf}.0.layer_norm.weight", fx, "pre_self_attention_layer_norm"))
        entries += attention(f"{hf}.1.EncDecAttention", fx + ("encoder_decoder_attention",))
        entries.append(norm(f"{hf}.1.layer_norm.weight", fx, "pre_cross_attention_layer_norm"))
        entries += mlp(f"{hf}.2", fx)
        entries.append(norm(f"{hf}.2.layer_norm.weight", fx, "pre_mlp_layer_norm"))
    for stack in ("encoder", "decoder"):
        layers = config.num_layers if stack == "encoder" else config.num_decoder_layers
        for i in range(layers if config.relative_bias_per_layer else 1):  # UMT5: every layer
            entries.append(
                MappedParam(
                    f"{stack}.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight",
                    (stack, f"layers_{i}", "relpos_bias", "rel_embedding")
                    if config.relative_bias_per_layer
                    else (stack, "relpos_bias", "rel_embedding"),
                    True,
                )
            )
        entries.append(norm(f"{stack}.final_layer_norm.weight", (stack,), f"{stack}_norm"))
    if not config.tie_word_embeddings:
        entries.append(MappedParam("lm_head.weight", ("decoder", "logits_dense", "kernel"), True))
    return entries


class _TensorSource:
    """Lazy name -> array access over the weight files of one HF directory."""

    def __init__(self, directory: str):
        self.directory = directory
        self._readers: dict[str, Callable[[], np.ndarray]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self.description = ""
        index = os.path.join(directory, SAFETENSORS_INDEX_FILE)
        single = os.path.join(directory, SAFETENSORS_FILE)
        torch_file = os.path.join(directory, TORCH_FILE)
        if os.path.exists(single):
            self._add_safetensors(single)
            self.description = single
        elif os.path.exists(index):
            self._add_sharded(index)
            self.description = index
        elif os.path.exists(torch_file):
            self._add_torch(torch_file)
            self.description = torch_file
        else:
            raise CheckpointError(
                f"{directory}: no weights found. Expected {SAFETENSORS_FILE}, "
                f"{SAFETENSORS_INDEX_FILE} or {TORCH_FILE} next to {CONFIG_FILE} "
                "(as written by transformers' save_pretrained)."
            )

    def _add_safetensors(self, path: str) -> None:
        reader = SafetensorsFile(path)
        for name in reader.keys():
            self._shapes[name] = reader.shape(name)
            self._readers[name] = lambda name=name: reader.get(name)

    def _add_sharded(self, index_path: str) -> None:
        try:
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{index_path}: not a safetensors index ({e}).") from e
        for shard in sorted(set(weight_map.values())):
            shard_path = os.path.join(self.directory, shard)
            if not os.path.exists(shard_path):
                raise CheckpointError(
                    f"{index_path} names shard {shard}, which is missing from {self.directory}."
                )
            self._add_safetensors(shard_path)

    def _add_torch(self, path: str) -> None:
        try:
            import torch
        except ImportError as e:
            raise CheckpointError(
                f"{path} is a PyTorch pickle and torch is not installed. Install the torch "
                "extra (pip install 'jaxprompt[torch]') or convert the checkpoint to "
                "safetensors."
            ) from e
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, ...
            raise CheckpointError(
                f"{path}: torch.load(weights_only=True) refused the file ({refusal_reason(e)}); "
                "jaxprompt never unpickles arbitrary objects: convert the checkpoint to "
                "safetensors where you trust it."
            ) from e

        def to_numpy(tensor):
            if tensor.dtype == torch.bfloat16:
                return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
            return tensor.numpy()

        for name, tensor in state.items():
            self._shapes[name] = tuple(tensor.shape)
            self._readers[name] = lambda tensor=tensor: to_numpy(tensor)

    def names(self) -> set[str]:
        return set(self._readers)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def get(self, name: str) -> np.ndarray:
        return self._readers[name]()


class _Lazy:
    """One tensor of a _TensorSource, read when numpy asks for it."""

    def __init__(self, source: _TensorSource, name: str):
        self.source, self.name = source, name

    def __array__(self, dtype=None, copy=None):
        array = self.source.get(self.name)
        return array if dtype is None else array.astype(dtype)


def load_hf_config(directory: str):
    """The T5Config, or DecoderConfig for a decoder-only model_type, of a HF directory."""
    from jaxprompt.decoder_config import DECODER_MODEL_TYPES, DecoderConfig

    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        raise CheckpointError(
            f"{directory}: no {CONFIG_FILE}; a Hugging Face model directory "
            "holds config.json and model.safetensors."
        )
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        if isinstance(raw, dict) and raw.get("model_type") in DECODER_MODEL_TYPES:
            return DecoderConfig.from_hf_config(raw, source=path)
        return T5Config.from_hf_config(path)
    except (ValueError, OSError, RecursionError) as e:  # ConfigError and JSON errors
        message = str(e)[:500]
        if path not in message:  # a JSON or encoding error: name the file
            message = f"{path}: not a readable JSON config ({message})"
        raise CheckpointError(message) from None


def stored_dtype(directory: str) -> str:
    """The dtype of the embedding as stored (safetensors header; pytorch_model.bin: float32,
    which is how transformers saves T5 unless told otherwise)."""
    index = os.path.join(directory, SAFETENSORS_INDEX_FILE)
    file = os.path.join(directory, SAFETENSORS_FILE)
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f).get("weight_map", {})
        shard = next((weight_map[k] for k in _EMBEDDING_ALIASES if k in weight_map), None)
        file = os.path.join(directory, shard) if shard else file
    if not os.path.exists(file):
        return "float32"
    header = SafetensorsFile(file)
    name = next((k for k in _EMBEDDING_ALIASES if k in header.keys()), header.keys()[0])
    return str(header.get(name).dtype)


def iter_hf_params(
    directory: str, config: T5Config, dtype=None
) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
    """Yields (Flax path, array [Flax layout]) one parameter at a time, after checking all shapes.

    Every missing tensor and every shape mismatch is collected first and reported in one
    CheckpointError naming the file, the tensor, the expected and the found shape.
    """
    source = _TensorSource(directory)
    expected = traverse_util.flatten_dict(param_shapes(config))
    available = source.names()
    plan, problems = [], []
    for entry in hf_parameter_map(config):
        name = entry.hf_name
        if name == "shared.weight" and name not in available:
            name = next((alias for alias in _EMBEDDING_ALIASES if alias in available), name)
        if name == "lm_head.weight" and name not in available and "shared.weight" in available:
            # transformers >= 5 builds T5.1.1 with lm_head tied to shared.weight and saves
            # it once; such a model's output layer is the embedding, unscaled.
            logger.info(
                "%s: no lm_head.weight; using shared.weight as the untied output "
                "layer, as transformers does.",
                directory,
            )
            name = "shared.weight"
        if name not in available:
            problems.append(f"missing tensor {entry.hf_name!r}")
            continue
        want = expected[entry.flax_path].shape
        want_hf = want[::-1] if entry.transpose else want
        got = source.shape(name)
        if got != want_hf:
            problems.append(f"{name!r} has shape {got} but config.json implies {want_hf}")
        plan.append((entry, name))
    if problems:
        raise CheckpointError(
            f"{source.description} does not match {os.path.join(directory, CONFIG_FILE)}:\n  - "
            + "\n  - ".join(problems)
            + "\nCheck that config.json belongs to these weights (and that it is a "
            "T5ForConditionalGeneration checkpoint)."
        )
    used = {name for _, name in plan} | set(_EMBEDDING_ALIASES)
    if config.tie_word_embeddings:
        used.add("lm_head.weight")  # Some writers store the tied head again.
    unused = sorted(available - used)
    if unused:
        logger.warning(
            "%s: ignoring %d tensors that T5 does not use: %s",
            source.description,
            len(unused),
            ", ".join(unused[:5]) + (" ..." if len(unused) > 5 else ""),
        )
    for entry, name in plan:
        array = source.get(name)
        array = array.T if entry.transpose else array
        array = np.array(array, dtype=dtype or array.dtype, order="C")  # Copy off the memmap.
        yield entry.flax_path, array


def load_hf_checkpoint(directory: str | os.PathLike, dtype=None) -> tuple[T5Config, dict]:
    """Reads a transformers T5 directory into (T5Config, params of jax arrays).

    Args:
      directory: holds config.json and model.safetensors (or a sharded index, or
        pytorch_model.bin, read with torch.load(weights_only=True) if torch is installed).
      dtype: cast every parameter to this dtype (e.g. jnp.bfloat16); None keeps the stored one.
    Returns:
      (config, params) with params in the Flax tree of `jaxprompt.T5(config)`.
    """
    directory = os.fspath(directory)
    config = load_hf_config(directory)
    if not isinstance(config, T5Config):
        from jaxprompt.checkpoints.decoder_names import params_from_hf

        source = _TensorSource(directory)
        tensors = {name: _Lazy(source, name) for name in source.names()}
        params = params_from_hf(tensors, config, source.description, dtype)
        return config, jax.tree.map(jax.device_put, params)
    flat = {path: jax.device_put(array) for path, array in iter_hf_params(directory, config, dtype)}
    return config, traverse_util.unflatten_dict(flat)


def save_hf_checkpoint(
    directory: str | os.PathLike, config: T5Config, params: dict, dtype=None
) -> None:
    """Writes config.json + model.safetensors that transformers' T5 loads (inverse of loading)."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    flat = traverse_util.flatten_dict(params)

    def tensors():
        for entry in hf_parameter_map(config):
            if entry.flax_path not in flat:
                raise CheckpointError(
                    f"params lack {'/'.join(entry.flax_path)} needed for "
                    f"{entry.hf_name}; are they unscanned T5 params?"
                )
            array = np.asarray(jax.device_get(flat[entry.flax_path]))
            if dtype is not None:
                array = array.astype(dtype)
            yield entry.hf_name, (array.T if entry.transpose else array)

    write_safetensors(
        os.path.join(directory, SAFETENSORS_FILE), list(tensors()), metadata={"format": "pt"}
    )
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(config.to_hf_config(), f, indent=2, sort_keys=True)
