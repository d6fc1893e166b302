"""Training every weight: the step and the resumable loop that pretraining the embedded model
(`jaxprompt.pretraining`) and the full-fine-tuning baseline (`tools/compare_methods.py`)
share. Prompt tuning never uses them: its step (`step.train_step`) differentiates the
trainable tree only and its loop is `loop.train`.

The loop keeps what the prompt-tuning loop promises: orbax checkpoints of (params,
optimizer state) in `workdir/checkpoints` every `checkpoint_every` steps, resume from the
latest, Ctrl-C / SIGTERM saved between steps (`interrupts`), metrics.jsonl records
(`metrics_log.MetricsLog`) and a progress bar. Batches are a function of the step they
start at, so a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxprompt.models.losses import cross_entropy
from jaxprompt.models.t5 import T5
from jaxprompt.training import interrupts
from jaxprompt.training.metrics_log import MetricsLog

# loss(params, batch, rng | None) -> (scalar to minimize, {name: scalar metric})
LossFn = Callable[[Any, dict, Any], tuple[jax.Array, dict]]


def seq2seq_loss(model: T5, z_loss: float = 0.0) -> LossFn:
    """Mean target-token cross-entropy (+ z-loss); dropout on when an rng is given.
    Metrics: {"loss": mean token NLL}."""

    def loss(params, batch, rng):
        logits = model.apply(
            {"params": params},
            batch["encoder_input_tokens"],
            batch["decoder_input_tokens"],
            enable_dropout=rng is not None,
            rngs=None if rng is None else {"dropout": rng},
        )
        sums = cross_entropy(
            logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss
        )
        weight = jnp.maximum(sums["weight"], 1.0)
        return sums["loss"] / weight, {"loss": sums["nll"] / weight}

    return loss


def weights_step(loss: LossFn, optimizer: optax.GradientTransformation) -> Callable:
    """A jitted step on every weight: (params, opt_state, batch, rng=None) -> (params,
    opt_state, metrics); params and optimizer state are donated."""

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, batch, rng=None):
        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, batch, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return step


@dataclasses.dataclass(frozen=True)
class WeightsLoopConfig:
    steps: int
    checkpoint_every: int = 250  # 0: only at the end (with a workdir)
    log_every: int = 25
    evaluate_every: int = 0  # call `evaluate` every N steps (and at the end); 0: never
    keep_checkpoints: int = 2
    progress: bool = True
    name: str = "train"  # the progress bar's label


def train_weights(
    step: Callable,
    params,
    opt_state,
    batches: Callable[[int], Iterator[dict]],
    config: WeightsLoopConfig,
    *,
    workdir: str | None = None,
    rng: jax.Array | None = None,
    evaluate: Callable[[int, Any], dict] | None = None,
    stop_after: int | None = None,
) -> tuple[Any, Any]:
    """Runs `step` to config.steps (or `stop_after`, checkpointed like an interruption);
    returns (params, opt_state).

    batches(start): the batches of steps start+1, start+2, ...; rng: base key of the
    per-step dropout keys (None: no dropout); evaluate(step, params) -> metrics, logged
    as split "eval". Without a workdir nothing is written and nothing resumes.
    """
    import orbax.checkpoint as ocp

    manager, log, start = None, None, 0
    if workdir is not None:
        manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints),
        )
        log = MetricsLog(workdir, tensorboard=False)
        if manager.latest_step() is not None:
            start = manager.latest_step()
            restored = manager.restore(
                start, args=ocp.args.StandardRestore({"params": params, "opt_state": opt_state})
            )
            params, opt_state = restored["params"], restored["opt_state"]
            print(f"resumed from {workdir} at step {start}", flush=True)

    def save(done):
        if manager is not None and manager.latest_step() != done:
            manager.save(
                done, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state})
            )
            manager.wait_until_finished()

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    pending, tick = [], time.time()
    bar = tqdm(
        total=config.steps,
        initial=start,
        desc=config.name,
        unit="step",
        dynamic_ncols=True,
        disable=not config.progress,
        mininterval=10,
    )
    source = batches(start)
    try:
        with interrupts.deferred_interrupts():
            for done in range(start + 1, end + 1):
                step_rng = None if rng is None else jax.random.fold_in(rng, done)
                params, opt_state, metrics = step(params, opt_state, next(source), step_rng)
                pending.append(metrics)
                bar.update(1)
                if done % config.log_every == 0 or done == end:
                    means = {
                        k: float(np.mean([m[k] for m in jax.device_get(pending)]))
                        for k in pending[0]
                    }
                    means["seconds_per_step"] = (time.time() - tick) / len(pending)
                    bar.set_postfix({k: round(v, 3) for k, v in means.items()})
                    if log is not None:
                        log.write(done, "train", means)
                    pending, tick = [], time.time()
                if (
                    evaluate is not None
                    and config.evaluate_every
                    and (done % config.evaluate_every == 0 or done == end)
                ):
                    results = evaluate(done, params)
                    if log is not None and results:
                        log.write(done, "eval", results)
                    tick = time.time()
                if done == end or (config.checkpoint_every and done % config.checkpoint_every == 0):
                    save(done)
                signum = interrupts.requested()
                if signum is not None and done < end:
                    save(done)
                    raise interrupts.TrainingInterrupted(
                        f"stopped at step {done}; run again to resume from {workdir}", signum
                    )
    finally:
        bar.close()
        getattr(source, "close", lambda: None)()  # ends batch workers, if any
        if manager is not None:
            manager.close()
        if log is not None:
            log.close()
    return params, opt_state


__all__ = ["LossFn", "WeightsLoopConfig", "seq2seq_loss", "train_weights", "weights_step"]
