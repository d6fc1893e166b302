"""Optimizers for prompts, masked so that nothing but trainable subtrees can ever move.

The paper's recipe is `adafactor` with a constant learning rate of 0.3, decay rate 0.8,
weight decay 1e-5, no parameter scaling and update clipping at RMS 1.0. As in t5x's
Adafactor, the weight decay is *not* multiplied by the learning rate:
    param <- (1 - weight_decay) * param - lr * clip(grad / sqrt(v_hat)).
optax.adafactor applies it in the same place (after the learning rate), so its update
equals t5x's; tests/test_optimizers.py checks two steps by hand.
"""

from __future__ import annotations

import dataclasses

import jax
import optax

# Top-level keys of trainable subtrees; everything else is frozen.
TRAINABLE_KEYS = ("prompt", "deep_prompt", "prompt_encoder")
OPTIMIZERS = ("adafactor", "adam", "adamw")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adafactor"  # one of OPTIMIZERS.
    learning_rate: float = 0.3
    warmup_steps: int = 0  # linear warmup from 0 (adam/adamw users expect one).
    decay_steps: int = 0  # > 0: cosine decay to 0 over this many steps after warmup.
    weight_decay: float = 1e-5
    # Adafactor.
    decay_rate: float = 0.8
    clipping_threshold: float | None = 1.0
    multiply_by_parameter_scale: bool = False
    # Adam / AdamW.
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip_norm: float | None = None  # global-norm clipping before the optimizer.

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.name!r}; choose one of {OPTIMIZERS}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """Constant, or linear warmup then constant / cosine decay."""
    if config.decay_steps > 0:
        return optax.warmup_cosine_decay_schedule(
            0.0,
            config.learning_rate,
            max(config.warmup_steps, 1),
            config.warmup_steps + config.decay_steps,
        )
    if config.warmup_steps > 0:
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps),
                optax.constant_schedule(config.learning_rate),
            ],
            [config.warmup_steps],
        )
    return optax.constant_schedule(config.learning_rate)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """The unmasked optimizer for the trainable tree."""
    schedule = learning_rate_schedule(config)
    if config.name == "adafactor":
        tx = optax.adafactor(
            learning_rate=schedule,
            decay_rate=config.decay_rate,
            decay_offset=0,
            multiply_by_parameter_scale=config.multiply_by_parameter_scale,
            clipping_threshold=config.clipping_threshold,
            momentum=None,
            weight_decay_rate=config.weight_decay or None,
            eps=1e-30,
            factored=True,
            min_dim_size_to_factor=128,
        )
    elif config.name == "adam":
        tx = optax.adam(schedule, b1=config.b1, b2=config.b2, eps=config.eps)
    else:
        tx = optax.adamw(
            schedule, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay
        )
    if config.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    return tx


def trainable_labels(tree) -> object:
    """'train' for leaves under a TRAINABLE_KEYS top-level key, 'freeze' elsewhere."""

    def label(path, _):
        top = path[0].key if path and hasattr(path[0], "key") else None
        return "train" if top in TRAINABLE_KEYS else "freeze"

    return jax.tree_util.tree_map_with_path(label, tree)


def trainable_only(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """Masks `tx` to trainable subtrees; every other update is exactly zero.

    The optimizer state holds leaves only for trainable subtrees, so even a caller that
    passes the combined {prompt, frozen weights} tree never moves a frozen weight and
    never allocates optimizer state for one.
    """
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, trainable_labels)


def prompt_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """The masked optimizer used by the trainer."""
    return trainable_only(make_optimizer(config))
