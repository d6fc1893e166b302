"""Pure prompt-tuning steps and their sharded, jitted forms.

The frozen model params (T5 or a decoder-only LM) and the trainable tree ({"prompt": [P, H]}, and/or a deep prompt
{"deep_prompt": {"encoder_key": [L, P, K], ...}}) are separate pytrees.
`loss_fn(trainable, frozen, batch, rng)` is differentiated with respect to `trainable`
only, so no weight gradient is ever computed; the optimizer is masked to trainable
subtrees and holds state for them alone.

Batches use seqio's EncDecFeatureConverter names:
  encoder_input_tokens [B, T], decoder_input_tokens [B, S],
  decoder_target_tokens [B, S], decoder_loss_weights [B, S].
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxprompt import partitioning
from jaxprompt.models.losses import cross_entropy
from jaxprompt.models.family import family_of
from jaxprompt.prompts.reparam import PromptEncoderConfig, effective_prompt
from jaxprompt.prompts.trainable import trainable_axes

BATCH_KEYS = (
    "encoder_input_tokens",
    "decoder_input_tokens",
    "decoder_target_tokens",
    "decoder_loss_weights",
)
Batch = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken.
    trainable: dict  # {"prompt": [P, H]} and/or {"deep_prompt": {...}}
    opt_state: optax.OptState
    rng: jax.Array  # uint32[2] base key; step rng = fold_in(rng, step).


@dataclasses.dataclass(frozen=True)
class StepConfig:
    z_loss: float = 1e-4  # t5x's recipe.
    label_smoothing: float = 0.0
    prompt_mode: str = "prefix"
    enable_dropout: bool = True  # dropout inside the frozen model during training (T5's 0.1).
    loss_normalization: str = "tokens"  # "tokens": mean over target tokens; "sum": t5x's sum.
    # The options of trainable["prompt_encoder"] (residual reparameterization), if any.
    prompt_encoder: PromptEncoderConfig | None = None

    def __post_init__(self):
        if self.loss_normalization not in ("tokens", "sum"):
            raise ValueError(
                f"loss_normalization must be 'tokens' or 'sum', got {self.loss_normalization!r}."
            )


def init_train_state(
    trainable: dict, optimizer: optax.GradientTransformation, seed: int
) -> TrainState:
    """Step 0 of a run: the trainable tree (float32), its optimizer state and the base rng."""
    trainable = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), trainable)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        trainable=trainable,
        opt_state=optimizer.init(trainable),
        rng=jax.random.PRNGKey(seed),
    )


def forward(
    config,
    trainable: dict,
    frozen: dict,
    batch: Batch,
    *,
    prompt_mode: str,
    enable_dropout: bool = False,
    rng: jax.Array | None = None,
    prompt_encoder: PromptEncoderConfig | None = None,
) -> jax.Array:
    """Logits [B, S, V] of the frozen model (any family: jaxprompt.models.family) with the
    trainable prompt (through its encoder, if any) and deep prompt."""
    encoder_rng = jax.random.fold_in(rng, 1) if enable_dropout and rng is not None else None
    prompt = effective_prompt(trainable, prompt_encoder, encoder_rng)
    return family_of(config).target_logits(
        config,
        frozen,
        batch["encoder_input_tokens"],
        batch["decoder_target_tokens"],
        prompt,
        None,
        prompt_mode,
        trainable.get("deep_prompt"),
        enable_dropout=enable_dropout,
        rng=rng,
    )


def loss_fn(
    trainable: dict,
    frozen: dict,
    batch: Batch,
    rng: jax.Array,
    *,
    config,
    step_config: StepConfig,
) -> tuple[jax.Array, dict]:
    """Scalar training loss and the summed statistics behind it."""
    logits = forward(
        config,
        trainable,
        frozen,
        batch,
        prompt_mode=step_config.prompt_mode,
        enable_dropout=step_config.enable_dropout,
        rng=rng,
        prompt_encoder=step_config.prompt_encoder,
    )
    sums = cross_entropy(
        logits,
        batch["decoder_target_tokens"],
        batch["decoder_loss_weights"],
        step_config.z_loss,
        step_config.label_smoothing,
    )
    if step_config.loss_normalization == "tokens":
        loss = sums["loss"] / jnp.maximum(sums["weight"], 1.0)
    else:
        loss = sums["loss"]
    return loss, sums


def train_step(
    state: TrainState,
    frozen: dict,
    batch: Batch,
    *,
    config,
    optimizer: optax.GradientTransformation,
    step_config: StepConfig,
) -> tuple[TrainState, dict]:
    """One optimizer step on the trainable tree: (state, frozen, batch) -> (state, metrics)."""
    rng = jax.random.fold_in(state.rng, state.step)
    grad_fn = jax.value_and_grad(
        functools.partial(loss_fn, config=config, step_config=step_config), has_aux=True
    )
    (loss, sums), grads = grad_fn(state.trainable, frozen, batch, rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    trainable = optax.apply_updates(state.trainable, updates)
    metrics = {
        "loss": loss,
        "nll_sum": sums["nll"],
        "z_loss_sum": sums["z_loss"],
        "weight": sums["weight"],
        "grad_norm": optax.tree.norm(grads),
    }
    return state.replace(step=state.step + 1, trainable=trainable, opt_state=opt_state), metrics


def eval_step(
    trainable: dict, frozen: dict, batch: Batch, *, config, step_config: StepConfig
) -> dict:
    """Summed validation statistics (no dropout): {"nll", "loss", "z_loss", "weight"}."""
    logits = forward(
        config,
        trainable,
        frozen,
        batch,
        prompt_mode=step_config.prompt_mode,
        prompt_encoder=step_config.prompt_encoder,
    )
    return cross_entropy(
        logits,
        batch["decoder_target_tokens"],
        batch["decoder_loss_weights"],
        step_config.z_loss,
        0.0,
    )


@dataclasses.dataclass(frozen=True)
class ShardedSteps:
    """The jitted steps and the shardings their arguments must have."""

    train_step: Callable[[TrainState, dict, Batch], tuple[TrainState, dict]]
    eval_step: Callable[[dict, dict, Batch], dict]
    mesh: Mesh
    frozen_shardings: Any
    state_shardings: Any
    batch_sharding: jax.sharding.NamedSharding


def shard_steps(
    config,
    optimizer: optax.GradientTransformation,
    step_config: StepConfig,
    state: TrainState,
    mesh: Mesh,
    rules=partitioning.DEFAULT_RULES,
) -> ShardedSteps:
    """jax.jit's the steps with explicit in/out shardings; the train state is donated.

    Frozen params are sharded by their logical axes and the rules; the trainable tree by
    its own (the prompt ("prompt", "embed"), a deep prompt ("layers", "prompt",
    "joined_kv")); the rest of the state (optimizer statistics, step, rng) is replicated;
    batches are split along B over the mesh axis of the 'batch' rule.
    """
    family = family_of(config)
    frozen_shardings = partitioning.tree_shardings(
        family.param_shapes(config), family.param_axes(config), mesh, rules
    )
    state_shardings = jax.tree.map(lambda _: partitioning.replicated(mesh), state)
    state_shardings = state_shardings.replace(
        trainable=partitioning.tree_shardings(
            state.trainable, trainable_axes(state.trainable), mesh, rules
        )
    )
    batch_sharding = partitioning.batch_sharding(mesh, rules)

    def with_rules(fn):
        """Traces `fn` with the mesh and rules that activation constraints resolve against;
        named as `fn` (jit_train_step, jit_eval_step in profiles and XLA dumps)."""

        def wrapped(*args):
            with (
                jax.sharding.use_abstract_mesh(mesh.abstract_mesh),
                partitioning.activation_rules(rules),
            ):
                return fn(*args)

        wrapped.__name__ = wrapped.__qualname__ = fn.func.__name__
        return wrapped

    train = jax.jit(
        with_rules(
            functools.partial(
                train_step, config=config, optimizer=optimizer, step_config=step_config
            )
        ),
        in_shardings=(
            state_shardings,  # state: the trainable tree by its axes, the rest replicated
            frozen_shardings,  # frozen T5: sharded once, never copied per step
            batch_sharding,
        ),  # batch: split along B
        out_shardings=(state_shardings, partitioning.replicated(mesh)),
        donate_argnums=(0,),
    )
    evaluate = jax.jit(
        with_rules(functools.partial(eval_step, config=config, step_config=step_config)),
        in_shardings=(state_shardings.trainable, frozen_shardings, batch_sharding),
        out_shardings=partitioning.replicated(mesh),
    )
    return ShardedSteps(train, evaluate, mesh, frozen_shardings, state_shardings, batch_sharding)
