"""Identities of weight trees: hashes of every leaf's path, shape and a strided sample of
its values (reading all of an 11B model would take minutes)."""

from __future__ import annotations

import hashlib

import jax

from jaxprompt.distributed import fetch


def _sampled_leaves(params: dict, samples_per_leaf: int):
    """(path, leaf, sample) per leaf in path order: a strided sample of at most
    `samples_per_leaf` values (reading all of an 11B model would take minutes)."""
    for path, leaf in sorted(
        jax.tree_util.tree_flatten_with_path(params)[0],
        key=lambda item: jax.tree_util.keystr(item[0]),
    ):
        flat = leaf.reshape(-1)
        stride = max(1, flat.shape[0] // samples_per_leaf)
        yield jax.tree_util.keystr(path), leaf, fetch(flat[::stride][:samples_per_leaf])


def frozen_fingerprint(params: dict, samples_per_leaf: int = 1024) -> str:
    """A content hash of the frozen params from every leaf's path, shape, dtype and a
    strided sample of its values: what a run's model_info.json checks on resume."""
    digest = hashlib.sha256()
    for path, leaf, sample in _sampled_leaves(params, samples_per_leaf):
        digest.update(f"{path}{tuple(leaf.shape)}{leaf.dtype}".encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()[:32]


def content_fingerprint(params: dict, samples_per_leaf: int = 1024) -> str:
    """The frozen weights' identity as a prompt records it: leaf paths, shapes and a strided
    sample of the values rounded to bfloat16, so the same weights stored or loaded as
    float32 or bfloat16 match, while another model (or a perturbed copy) does not."""
    import ml_dtypes
    import numpy as np

    digest = hashlib.sha256()
    for path, leaf, sample in _sampled_leaves(params, samples_per_leaf):
        digest.update(f"{path}{tuple(leaf.shape)}".encode())
        digest.update(np.asarray(sample, np.float32).astype(ml_dtypes.bfloat16).tobytes())
    return digest.hexdigest()[:32]


__all__ = ["content_fingerprint", "frozen_fingerprint"]
