"""T5X checkpoints: a msgpack tree (`checkpoint_N/checkpoint`) whose large arrays live in
tensorstore zarr directories beside it (`target.encoder.layers_0.attention.query.kernel/`).

Leaves of `optimizer/target` are either inline arrays or tensorstore specs; both are read
into jaxprompt's Flax tree (the names are t5x's own). T5X stores no model config: the
shapes determine vocab, d_model, heads, d_kv, d_ff, depth, gating and tying, and the
rest (relative max distance, epsilon) comes from a preset / explicit config or T5's
defaults, logged as assumed. With `shardings`, each process reads only the slices its
devices hold (tensorstore reads per shard), so an XXL checkpoint never passes through one
host's RAM whole. `gs://` paths use tensorstore's GCS driver.
"""

from __future__ import annotations

import logging
import os
import re

import jax
import numpy as np
from flax import serialization, traverse_util

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.config import T5Config
from jaxprompt.models.t5 import param_shapes

logger = logging.getLogger(__name__)


def checkpoint_file(path: str) -> str | None:
    """The msgpack file of a T5X checkpoint at `path` (dir or file), or None."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "checkpoint")
        return candidate if os.path.isfile(candidate) else None
    return path if os.path.isfile(path) else None


def _read_tree(file: str) -> dict:
    try:
        with open(file, "rb") as f:
            tree = serialization.msgpack_restore(f.read())
    except Exception as e:  # msgpack raises several unrelated types
        raise CheckpointError(f"{file}: not a T5X checkpoint (cannot decode msgpack: {e}).") from e
    if not isinstance(tree, dict) or "target" not in tree.get("optimizer", {}):
        keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise CheckpointError(
            f"{file}: not a T5X checkpoint: no optimizer/target in its tree (top level: {keys})."
        )
    return tree["optimizer"]["target"]


def _is_tensorstore_spec(leaf) -> bool:
    return isinstance(leaf, dict) and "driver" in leaf and "kvstore" in leaf


def _kvstore(directory: str, relative: str) -> dict:
    if directory.startswith("gs://"):
        bucket, _, prefix = directory[len("gs://") :].partition("/")
        return {"driver": "gcs", "bucket": bucket, "path": f"{prefix.rstrip('/')}/{relative}"}
    return {"driver": "file", "path": os.path.join(directory, relative)}


class _Leaf:
    """One parameter: an inline array or a lazily opened tensorstore array."""

    def __init__(self, directory: str, name: str, value):
        self.name, self.directory = name, directory
        self.inline = None if _is_tensorstore_spec(value) else np.asarray(value)
        self.spec = value if self.inline is None else None
        self._store = None

    @property
    def store(self):
        if self._store is None:
            import tensorstore as ts

            spec = dict(self.spec)
            spec["kvstore"] = _kvstore(self.directory, self.spec["kvstore"]["path"])
            spec.pop("metadata", None)  # Read the array's own .zarray.
            try:
                self._store = ts.open(spec, open=True, read=True).result()
            except Exception as e:
                raise CheckpointError(
                    f"{spec['kvstore'].get('path')}: cannot open the "
                    f"tensorstore array of {self.name}: {e}"
                ) from e
        return self._store

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.inline.shape) if self.inline is not None else tuple(self.store.shape)

    def read(self, index=()) -> np.ndarray:
        if self.inline is not None:
            return self.inline[index]
        return np.asarray(self.store[index].read().result())


def _leaves(path: str) -> tuple[str, dict[tuple[str, ...], _Leaf]]:
    file = checkpoint_file(path)
    if file is None:
        raise CheckpointError(f"{path}: no T5X checkpoint file.")
    directory = os.path.dirname(os.path.abspath(file))
    target = _read_tree(file)
    flat: dict[tuple[str, ...], object] = {}
    for key, value in traverse_util.flatten_dict(
        target, is_leaf=lambda _, v: _is_tensorstore_spec(v) or not isinstance(v, dict)
    ).items():
        flat[key] = _Leaf(directory, "/".join(key), value)
    return file, flat


def infer_config(
    shapes: dict[tuple[str, ...], tuple[int, ...]], base: T5Config | None = None, source: str = ""
) -> T5Config:
    """The T5Config the parameter shapes determine; other fields from `base` or defaults."""

    def shape(*key):
        if key not in shapes:
            raise CheckpointError(
                f"{source}: no {'/'.join(key)}; is this a T5 (encoder-decoder) "
                "T5X checkpoint? Scanned (`layers`) checkpoints are not "
                "supported yet."
            )
        return shapes[key]

    vocab, d_model = shape("token_embedder", "embedding")
    heads, buckets = shape("encoder", "relpos_bias", "rel_embedding")
    inner = shape("encoder", "layers_0", "attention", "query", "kernel")[1]
    gated = ("encoder", "layers_0", "mlp", "wi_0", "kernel") in shapes
    d_ff = shape("encoder", "layers_0", "mlp", "wi_0" if gated else "wi", "kernel")[1]
    count = lambda stack: len(
        {k[1] for k in shapes if k[0] == stack and re.fullmatch(r"layers_\d+", k[1])}
    )
    inferred = dict(
        vocab_size=vocab,
        d_model=d_model,
        num_heads=heads,
        d_kv=inner // heads,
        d_ff=d_ff,
        num_layers=count("encoder"),
        num_decoder_layers=count("decoder"),
        feed_forward_proj="gated-gelu" if gated else "relu",
        tie_word_embeddings=("decoder", "logits_dense", "kernel") not in shapes,
        relative_attention_num_buckets=buckets,
    )
    if base is not None:
        differing = {k: (getattr(base, k), v) for k, v in inferred.items() if getattr(base, k) != v}
        if differing:
            raise CheckpointError(
                f"{source}: the given config does not match the checkpoint: "
                + ", ".join(f"{k} config {a} vs checkpoint {b}" for k, (a, b) in differing.items())
            )
        return base
    config = T5Config(**inferred)
    logger.warning(
        "%s: T5X checkpoints carry no config; inferred %s from the shapes and "
        "assumed relative_attention_max_distance=%d, layer_norm_epsilon=%g, "
        "dropout_rate=%g (pass config= to override).",
        source,
        inferred,
        config.relative_attention_max_distance,
        config.layer_norm_epsilon,
        config.dropout_rate,
    )
    return config


def t5x_shapes(path: str | os.PathLike) -> tuple[T5Config, np.dtype]:
    """(inferred architecture, dtype of the embedding) from the checkpoint's metadata only."""
    file, leaves = _leaves(os.fspath(path))
    config = infer_config({key: leaf.shape for key, leaf in leaves.items()}, None, file)
    embedding = leaves[("token_embedder", "embedding")]
    dtype = (
        embedding.inline.dtype
        if embedding.inline is not None
        else embedding.store.dtype.numpy_dtype
    )
    return config, dtype


def load_t5x_checkpoint(
    path: str | os.PathLike, config: T5Config | None = None, dtype=None, shardings=None
) -> tuple[T5Config, dict]:
    """Reads a T5X checkpoint into (T5Config, params).

    Args:
      path: a checkpoint directory (holding `checkpoint`) or the msgpack file itself.
      config: the architecture, e.g. T5Config.preset("t5_1_1_lm100k_base"); None infers it.
      dtype: cast parameters (None keeps the stored dtype, e.g. bfloat16).
      shardings: a tree of jax.sharding.Sharding matching the params (or a function
        config -> such a tree); each process then reads only its devices' slices.
    """
    path = os.fspath(path)
    file, leaves = _leaves(path)
    shapes = {key: leaf.shape for key, leaf in leaves.items()}
    config = infer_config(shapes, config, file)
    expected = traverse_util.flatten_dict(param_shapes(config))
    problems = [f"missing {'/'.join(k)}" for k in expected if k not in leaves]
    problems += [
        f"{'/'.join(k)} has shape {shapes[k]} but the config implies {v.shape}"
        for k, v in expected.items()
        if k in leaves and shapes[k] != v.shape
    ]
    if problems:
        raise CheckpointError(f"{file}: " + "; ".join(problems))
    extra = sorted("/".join(k) for k in leaves if k not in expected)
    if extra:
        logger.info(
            "%s: ignoring %d parameters T5 does not use (e.g. %s)", file, len(extra), extra[0]
        )
    if callable(shardings):
        shardings = shardings(config)
    flat_shardings = traverse_util.flatten_dict(shardings) if shardings is not None else {}
    params = {}
    for key in expected:
        leaf = leaves[key]
        sharding = flat_shardings.get(key)
        if sharding is None:
            array = leaf.read()
            params[key] = jax.device_put(array.astype(dtype) if dtype is not None else array)
        else:
            params[key] = jax.make_array_from_callback(
                leaf.shape,
                sharding,
                lambda index, leaf=leaf: (
                    leaf.read(index).astype(dtype) if dtype is not None else leaf.read(index)
                ),
            )
    return config, traverse_util.unflatten_dict(params)


def is_t5x_checkpoint(path: str) -> bool:
    """A directory holding `checkpoint`, or a file that starts like a msgpack map."""
    file = checkpoint_file(path)
    if file is None:
        return False
    if os.path.isdir(path):
        return True
    with open(file, "rb") as f:
        head = f.read(1)
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


__all__ = ["t5x_shapes", "infer_config", "is_t5x_checkpoint", "load_t5x_checkpoint"]
