"""The one place where a run's configuration becomes its jitted, sharded steps.

`train()` (and so `jaxprompt train`, the quickstart and the method comparison) and
`jaxprompt plan` both call `build_steps`; the planner then lowers the very functions the
trainer calls, with `abstract_arguments` standing in for weights, state and batch, so the
plan is the run (MaxText's train_compile.py idea).

What a run computes comes from the checkpoint (its architecture); how it executes comes
from the configuration: `execution_config` merges the two and refuses disagreements.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt import partitioning
from jaxprompt.config import ConfigError
from jaxprompt.models.family import family_of
from jaxprompt.training.optimizers import OptimizerConfig, prompt_optimizer
from jaxprompt.training.step import (
    BATCH_KEYS,
    ShardedSteps,
    StepConfig,
    init_train_state,
    shard_steps,
)

# Config fields (T5Config, DecoderConfig) that change how a model runs, not what it computes.
EXECUTION_FIELDS = ("dtype", "scan_layers", "remat_policy", "dropout_rate")
# The dtypes of a training batch as jaxprompt.data builds it (seqio's feature converter).
BATCH_DTYPES = {key: jnp.int32 for key in BATCH_KEYS}


def execution_config(checkpoint, bindings: Mapping[str, Any], source: str = "the checkpoint"):
    """The checkpoint's architecture (a T5Config or DecoderConfig) with the execution
    settings of `bindings`.

    `bindings` are config fields set by the user (gin's `T5Config.*`). An architecture
    field must equal the checkpoint's (the models/*.gin files then act as a check); an
    execution field (EXECUTION_FIELDS) replaces it; the config's own checks refuse bad values.
    """
    kind = type(checkpoint).__name__
    known = {f.name for f in dataclasses.fields(checkpoint)}
    unknown = sorted(set(bindings) - known)
    if unknown:
        raise ConfigError(f"{kind} has no field(s) {unknown}.")
    differing = [
        f"{kind}.{k} = {v!r} but {source} has {getattr(checkpoint, k)!r}"
        for k, v in bindings.items()
        if k not in EXECUTION_FIELDS and getattr(checkpoint, k) != v
    ]
    if differing:
        raise ConfigError(
            "The configuration disagrees with the model's architecture: "
            + "; ".join(differing)
            + ". Remove the binding (or the models/*.gin "
            "file that sets it), or load the model it describes."
        )
    return checkpoint.replace(**{k: v for k, v in bindings.items() if k in EXECUTION_FIELDS})


def execution_settings(config, param_dtype: str | None, mesh_shape) -> dict[str, Any]:
    """What model_info.json records of how a run executed."""
    return {
        "dtype": config.dtype,
        "param_dtype": param_dtype or "stored",
        "scan_layers": config.scan_layers,
        "remat_policy": config.remat_policy,
        "mesh_shape": None if mesh_shape is None else list(mesh_shape),
    }


def build_steps(
    model_config,
    trainable_shapes: dict,
    optimizer_config: OptimizerConfig,
    step_config: StepConfig,
    mesh_shape=None,
    rules=None,
    devices=None,
) -> tuple[ShardedSteps, Any, Any]:
    """(sharded steps, optimizer, abstract TrainState) of one prompt-tuning run.

    trainable_shapes: the trainable tree as arrays or ShapeDtypeStructs ({"prompt": [P, H]}
    and/or {"deep_prompt": {...}}); devices: default jax.devices() (or a TPU topology's).
    """
    rules = partitioning.DEFAULT_RULES if rules is None else tuple(tuple(r) for r in rules)
    mesh = partitioning.make_mesh(mesh_shape, devices)
    optimizer = prompt_optimizer(optimizer_config)
    trainable = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jnp.float32), trainable_shapes)
    abstract_state = jax.eval_shape(lambda t: init_train_state(t, optimizer, 0), trainable)
    steps = shard_steps(model_config, optimizer, step_config, abstract_state, mesh, rules)
    return steps, optimizer, abstract_state


def abstract_arguments(
    steps: ShardedSteps,
    abstract_state,
    model_config,
    param_dtype: str,
    batch_size: int,
    inputs_length: int,
    targets_length: int,
) -> tuple[Any, dict, dict]:
    """(state, frozen params, batch) as sharded ShapeDtypeStructs: a train step's arguments
    without any of them being allocated. Encoder [B, inputs_length], decoder [B, targets]."""
    check_batch_divides(batch_size, steps.mesh, steps.batch_sharding)
    struct = lambda shape, dtype, sharding: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
    state = jax.tree.map(
        lambda s, sh: struct(s.shape, s.dtype, sh), abstract_state, steps.state_shardings
    )
    frozen = jax.tree.map(
        lambda s, sh: struct(s.shape, jnp.dtype(param_dtype), sh),
        family_of(model_config).param_shapes(model_config),
        steps.frozen_shardings,
    )
    lengths = {"encoder_input_tokens": inputs_length}  # the rest: [B, targets_length]
    batch = {
        key: struct(
            (batch_size, lengths.get(key, targets_length)), BATCH_DTYPES[key], steps.batch_sharding
        )
        for key in BATCH_KEYS
    }
    return state, frozen, batch


def check_batch_divides(batch_size: int, mesh, batch_sharding) -> None:
    axis = batch_sharding.spec[0] if batch_sharding.spec else None
    size = 1 if axis is None else mesh.shape[axis]
    if batch_size % size:
        raise ConfigError(
            f"Batch size {batch_size} is not divisible by the mesh's {axis!r} "
            f"axis of size {size} (mesh {dict(mesh.shape)}); use a batch size "
            f"that is a multiple of {size} or another mesh_shape."
        )


def model_layout(params: dict, config) -> dict:
    """Checkpoint params (per-layer `layers_i`) in the layout the model expects: stacked
    `layers` [L, ...] under scan_layers."""
    return family_of(config).model_layout(params, config)


def tree_dtype(params: dict) -> str:
    """The dtype of a params tree (the first leaf's), e.g. 'float32'."""
    return str(np.dtype(jax.tree.leaves(params)[0].dtype))


__all__ = [
    "BATCH_DTYPES",
    "EXECUTION_FIELDS",
    "abstract_arguments",
    "build_steps",
    "execution_config",
    "execution_settings",
    "model_layout",
    "tree_dtype",
]
