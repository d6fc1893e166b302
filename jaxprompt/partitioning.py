"""Device mesh, logical axis rules (data, overridable), and the shardings derived from them.

Parameters carry logical axis names (see jaxprompt.models.t5); rules map each name to a
mesh axis or None (replicated). The same code shards a 1-device CPU test and a TPU pod.
"""

from __future__ import annotations

import logging
from typing import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

logger = logging.getLogger(__name__)

MESH_AXES = ("data", "model")

# t5x's default 2D rules: batch over data; vocab, mlp, heads and joined_kv over model;
# embed and kv replicated (1D model parallelism). The prompt is replicated: it is tiny.
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("kv", None),
    ("embed", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("prompt", None),
)


class PartitioningError(ValueError):
    """A mesh or rule set that cannot shard the given arrays."""


def make_mesh(shape: Sequence[int] | None = None, devices: Sequence | None = None) -> Mesh:
    """A ("data", "model") mesh over `devices` (default: all); shape default (n, 1)."""
    devices = list(devices if devices is not None else jax.devices())
    shape = tuple(shape) if shape is not None else (len(devices), 1)
    if len(shape) != 2 or int(np.prod(shape)) != len(devices):
        raise PartitioningError(
            f"Mesh shape {shape} (data, model) needs {int(np.prod(shape))} "
            f"devices; {len(devices)} are available. Choose a shape whose "
            "product is the device count, e.g. (n, 1) or (1, n)."
        )
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def _check_rules(rules) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for logical, mesh_axis in rules:
        if logical in mapping and mapping[logical] != mesh_axis:
            raise PartitioningError(
                f"Logical axis {logical!r} has two rules: "
                f"{mapping[logical]!r} and {mesh_axis!r}; keep one."
            )
        if mesh_axis is not None and mesh_axis not in MESH_AXES:
            raise PartitioningError(
                f"Rule ({logical!r}, {mesh_axis!r}) names an unknown mesh "
                f"axis; mesh axes are {MESH_AXES}."
            )
        mapping[logical] = mesh_axis
    return mapping


def logical_to_mesh_spec(
    path: str, logical: PartitionSpec | Sequence | None, shape, mesh: Mesh, rules=DEFAULT_RULES
) -> PartitionSpec:
    """Maps one array's logical axes to a mesh PartitionSpec, with checks that name `path`.

    Raises PartitioningError when a logical axis has no rule or when two axes of the array
    map to the same mesh axis. A dimension not divisible by its mesh axis size is replicated
    (with a warning naming it): e.g. 6 heads over a model axis of 4.
    """
    mapping = _check_rules(rules)
    if logical is None:
        return PartitionSpec()
    names = tuple(logical)
    if len(names) != len(shape):
        raise PartitioningError(
            f"{path}: {len(names)} logical axes {names} for an array of shape {tuple(shape)}."
        )
    spec, used = [], {}
    for dim, (name, size) in enumerate(zip(names, shape)):
        if name is None:
            spec.append(None)
            continue
        if name not in mapping:
            raise PartitioningError(
                f"Failed to map logical axis {name!r} of {path} "
                f"{tuple(shape)}: no rule for it. Add ({name!r}, mesh axis "
                "or None) to the rules."
            )
        mesh_axis = mapping[name]
        if mesh_axis is not None:
            if mesh_axis in used:
                raise PartitioningError(
                    f"{path}: logical axes {used[mesh_axis]!r} and {name!r} "
                    f"both map to mesh axis {mesh_axis!r}."
                )
            if size % mesh.shape[mesh_axis]:
                logger.warning(
                    "%s: dimension %d (%r) of size %d is not divisible by mesh axis "
                    "%r of size %d; replicating it instead.",
                    path,
                    dim,
                    name,
                    size,
                    mesh_axis,
                    mesh.shape[mesh_axis],
                )
                spec.append(None)
                continue
            used[mesh_axis] = name
        spec.append(mesh_axis)
    return PartitionSpec(*spec)


def tree_shardings(tree, logical_specs, mesh: Mesh, rules=DEFAULT_RULES):
    """NamedShardings for every array of `tree` (arrays or ShapeDtypeStructs).

    `logical_specs` is a matching tree of logical PartitionSpecs (None = replicated).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    spec_leaves = treedef.flatten_up_to(logical_specs)
    shardings = []
    for (path, leaf), logical in zip(leaves, spec_leaves):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        spec = logical_to_mesh_spec(name, logical, leaf.shape, mesh, rules)
        shardings.append(NamedSharding(mesh, spec))
    return jax.tree_util.tree_unflatten(treedef, shardings)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, rules=DEFAULT_RULES) -> NamedSharding:
    """Sharding of a [B, ...] batch array: B over the mesh axis of the 'batch' rule."""
    return NamedSharding(mesh, PartitionSpec(_check_rules(rules).get("batch")))


def activation_rules(rules=DEFAULT_RULES):
    """Context manager setting flax's logical rules for activation constraints."""
    return nn.logical_axis_rules(list(rules))
