"""One training run's cycle: steps, progress, metrics, evaluation, checkpoints, early
stopping and interruption; the mutable parts of a run, kept apart from the pure steps
(`jaxprompt.training.step`) and from its setup (`jaxprompt.training.loop.train`)."""

from __future__ import annotations

import logging
import math
import signal
import time
from typing import Iterator

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxprompt.training.checkpointer import PromptCheckpointer
from jaxprompt.distributed import fetch, global_batch, is_leader
from jaxprompt.training.metrics_log import MetricsLog
from jaxprompt.training import interrupts
from jaxprompt.training.step import TrainState
from jaxprompt.training.loop_config import (
    TrainerConfig,
    TrainingError,
    check_batch,
    validation_loss,
)

logger = logging.getLogger(__name__)


class RunCycle:
    """The mutable parts of one training run, kept apart from the pure steps."""

    def __init__(
        self,
        tc: TrainerConfig,
        sharded,
        checkpointer: PromptCheckpointer,
        log: MetricsLog,
        frozen,
        meta: dict,
        eval_batches,
        eval_fn,
    ):
        self.tc, self.sharded, self.checkpointer, self.log = tc, sharded, checkpointer, log
        self.frozen, self.meta = frozen, dict(meta)
        self.eval_batches, self.eval_fn = eval_batches, eval_fn
        self.last_saved = None

    def run(self, state: TrainState, batches: Iterator[dict]) -> tuple[TrainState, bool]:
        tc = self.tc
        step = int(fetch(state.step))
        bar = tqdm(
            total=tc.steps,
            initial=step,
            disable=not (tc.progress and is_leader()),
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )
        window_loss, window_examples, window_start = [], 0, time.perf_counter()
        pending = None  # (step, metrics) of the previous step: checked after the next dispatch
        stopped_early = False
        try:
            while step < tc.steps:
                if interrupts.requested():
                    self._interrupted(step, state, interrupts.requested())
                try:
                    batch = next(batches)
                except StopIteration:
                    if step == int(self.meta["data_position"]):
                        raise TrainingError("The training data source is empty.") from None
                    logger.warning(
                        "Training data ran out at step %d of %d; stopping. Make the "
                        "source repeat to train longer.",
                        step,
                        tc.steps,
                    )
                    break
                check_batch(batch, step)
                examples = len(batch["encoder_input_tokens"])
                state, metrics = self.sharded.train_step(
                    state, self.frozen, global_batch(batch, self.sharded.batch_sharding)
                )
                if pending is not None:
                    window_loss.append(self._checked_loss(*pending))
                pending = (step, metrics)
                step += 1
                self.meta["data_position"] = step
                window_examples += examples
                bar.update(1)
                at_eval = tc.eval_every and step % tc.eval_every == 0
                at_checkpoint = step % (tc.checkpoint_every or tc.eval_every or tc.steps) == 0
                if step % tc.log_every == 0 or at_eval or at_checkpoint or step == tc.steps:
                    window_loss.append(self._checked_loss(*pending))
                    pending = None
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "loss": float(np.mean(window_loss)),
                        "examples_per_second": window_examples / max(elapsed, 1e-9),
                        "steps_per_second": len(window_loss) / max(elapsed, 1e-9),
                        "grad_norm": float(fetch(metrics["grad_norm"])),
                    }
                    self.log.write(step, "train", record)
                    bar.set_postfix(
                        loss=f"{record['loss']:.4f}", ex_s=f"{record['examples_per_second']:.1f}"
                    )
                    window_loss, window_examples, window_start = [], 0, time.perf_counter()
                if at_eval and self._evaluate(step, state):
                    stopped_early = True
                    break
                if at_checkpoint:
                    self._save(step, state)
            if pending is not None:
                self._checked_loss(*pending)
            if not stopped_early and not (tc.eval_every and step % tc.eval_every == 0):
                self._evaluate(step, state)  # The final evaluation, unless just done.
            self._save(step, state)
        finally:
            bar.close()
        return state, stopped_early

    def _checked_loss(self, step: int, metrics: dict) -> float:
        loss = float(fetch(metrics["loss"]))
        if not math.isfinite(loss):
            kept = self.checkpointer.latest_step()
            raise TrainingError(
                f"Non-finite loss ({loss}) at step {step + 1}. Training stopped; "
                + (
                    f"the last good checkpoint is step {kept} in {self.checkpointer.output_dir}."
                    if kept is not None
                    else "no checkpoint had been saved yet."
                )
                + " Lower the learning rate or check the data for empty targets."
            )
        return loss

    def _evaluate(self, step: int, state: TrainState) -> bool:
        """Validates, logs, saves a new best; returns True when early stopping triggers."""
        metrics: dict[str, float] = {}
        if self.eval_batches is not None:
            metrics.update(
                validation_loss(self.sharded, state.trainable, self.frozen, self.eval_batches)
            )
        if self.eval_fn is not None:
            metrics.update(self.eval_fn(state.trainable, self.frozen))
        if not metrics:
            return False
        self.log.write(step, "validation", metrics)
        key = self.tc.eval_metric
        if key not in metrics:
            raise TrainingError(
                f"eval_metric {key!r} is not among the validation metrics "
                f"{sorted(metrics)}; set TrainerConfig.eval_metric."
            )
        value, best = metrics[key], self.meta["best_metric"]
        improved = best is None or (value < best if self.tc.eval_mode == "min" else value > best)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if is_leader():
            tqdm.write(f"step {step}: validation {summary}" + (" (best)" if improved else ""))
        if improved:
            self.meta.update(best_metric=value, best_step=step, stale_evals=0)
            self._save(step, state, best=True)
            return False
        self.meta["stale_evals"] += 1
        return bool(
            self.tc.early_stopping_evals
            and self.meta["stale_evals"] >= self.tc.early_stopping_evals
        )

    def _interrupted(self, step: int, state: TrainState, signum: int):
        """Saves the state of `step` (its prompt, rng and data position belong together)."""
        self._save(step, state)
        name = signal.Signals(signum).name
        raise interrupts.TrainingInterrupted(
            f"Interrupted ({name}) at step {step}; saved checkpoint {step} in "
            f"{self.checkpointer.output_dir}. Run the same command again to resume.",
            signum,
        )

    def _save(self, step: int, state: TrainState, best: bool = False) -> None:
        """Saves, unless the trainable tree is not finite: then nothing is written and the
        run stops, naming the last checkpoint (all of them finite)."""
        finite = all(
            np.isfinite(np.asarray(fetch(leaf))).all() for leaf in jax.tree.leaves(state.trainable)
        )
        if not finite:
            kept = self.checkpointer.latest_step()
            raise TrainingError(
                f"The trainable parameters are not finite at step {step}; nothing was saved. "
                + (
                    f"The last checkpoint with a finite prompt is step {kept} in "
                    f"{self.checkpointer.output_dir}."
                    if kept is not None
                    else "No checkpoint had been saved yet."
                )
                + " Lower the learning rate or clip updates."
            )
        self.checkpointer.save(step, state, dict(self.meta), best=best)


__all__ = ["RunCycle"]
