"""The training loop: steps, evaluation, best/latest checkpoints, resume, progress, logs.

`train(...)` takes explicit arguments (no gin); `jaxprompt train` binds them from gin.
Determinism: the data order is a function of the position (batches consumed) and the
dropout rng of step s is fold_in(seed key, s), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import signal
import time
from typing import Callable, Iterable, Iterator

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxprompt.checkpoints.fingerprints import content_fingerprint, frozen_fingerprint
from jaxprompt.training.checkpointer import PromptCheckpointer, check_or_write_model_info
from jaxprompt.prompts.artifact import PromptInfo
from jaxprompt.prompts.reparam import fold
from jaxprompt.config import T5Config
from jaxprompt.prompts.init import PromptError
from jaxprompt.prompts.trainable import DEEP_PROMPT_FILE, as_trainable, check_trainable
from jaxprompt.prompts.trainable import shapes as trainable_shapes
from jaxprompt.distributed import fetch, global_batch, is_leader, place
from jaxprompt.training.metrics_log import MetricsLog, plot_learning_curve
from jaxprompt.training import interrupts
from jaxprompt.training.run_lock import run_lock
from jaxprompt.training.build import build_steps, execution_settings, model_layout, tree_dtype
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import BATCH_KEYS, StepConfig, TrainState, init_train_state

logger = logging.getLogger(__name__)

# A source of training batches: a function from the start position (batches already
# consumed) to an iterator, or a plain re-iterable (then the first `position` are skipped).
BatchSource = Callable[[int], Iterator[dict]] | Iterable[dict]


class TrainingError(RuntimeError):
    """Training stopped; the message says why, at which step, and what was kept."""


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    steps: int = 30000  # total optimizer steps (the paper: 30k).
    eval_every: int = 1000  # validate (and checkpoint) every N steps; 0 = only at the end.
    checkpoint_every: int = 0  # 0: with every evaluation.
    log_every: int = 10  # train metrics to metrics.jsonl / TensorBoard every N steps.
    seed: int = 0  # dropout rng (data order is the data source's own seed).
    mesh_shape: tuple[int, int] | None = None  # (data, model); None: (all devices, 1).
    # (logical axis, mesh axis or None) pairs; None: jaxprompt.partitioning.DEFAULT_RULES.
    logical_axis_rules: tuple[tuple[str, str | None], ...] | None = None
    eval_metric: str = "loss"  # validation metric that picks the best checkpoint.
    eval_mode: str = "min"  # "min" or "max" for eval_metric.
    early_stopping_evals: int = 0  # stop after N evaluations without improvement; 0 = never.
    keep_latest: int = 1  # latest checkpoints kept besides the best.
    progress: bool = True  # show a progress bar.

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.eval_mode not in ("min", "max"):
            raise ValueError(f"eval_mode must be 'min' or 'max', got {self.eval_mode!r}.")


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    step: int
    best_step: int | None
    best_metric: float | None
    output_dir: str
    best_prompt_path: str | None  # best/<step>/prompt.npy (None: no prompt or no evaluation)
    stopped_early: bool
    best_deep_prompt_path: str | None = None  # best/<step>/deep_prompt.npz
    eval_metric: str = "loss"  # the validation metric best_metric is of


def _batches_from(source: BatchSource, position: int) -> Iterator[dict]:
    if callable(source):
        return iter(source(position))
    return itertools.islice(iter(source), position, None)


def _check_batch(batch: dict, step: int) -> None:
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise TrainingError(f"Batch for step {step} lacks {missing}; batches need "
                            f"{list(BATCH_KEYS)} (seqio's EncDecFeatureConverter names).")


def validation_loss(sharded, trainable, frozen, eval_batches: Callable[[], Iterable[dict]]
                    ) -> dict[str, float]:
    """Mean token NLL over a validation source: {"loss", "tokens"}."""
    nll, tokens = 0.0, 0.0
    for batch in eval_batches():
        sums = sharded.eval_step(trainable, frozen, global_batch(batch, sharded.batch_sharding))
        nll += float(sums["nll"])
        tokens += float(sums["weight"])
    if tokens == 0:
        raise TrainingError("The validation source gave no target tokens.")
    return {"loss": nll / tokens, "tokens": tokens}


def train(*, model_config: T5Config, frozen_params: dict, trainable: dict,
          train_batches: BatchSource, output_dir: str,
          optimizer_config: OptimizerConfig = OptimizerConfig(),
          step_config: StepConfig = StepConfig(),
          trainer_config: TrainerConfig = TrainerConfig(),
          eval_batches: Callable[[], Iterable[dict]] | None = None,
          eval_fn: Callable[[dict, dict], dict[str, float]] | None = None,
          model_path: str | None = None, prompt_use: dict | None = None) -> TrainResult:
    """Prompt-tunes a frozen T5; resumes if `output_dir` holds a checkpoint of this run.

    Args:
      model_config, frozen_params: the frozen T5 (from `jaxprompt.load_pretrained`), the
        config with the run's execution settings (dtype, scan_layers, remat_policy; see
        jaxprompt.training.build.execution_config); per-layer params are stacked for scan.
      trainable: the initial trainable tree, {"prompt": [P, H]} (`init_prompt`) and/or
        {"deep_prompt": {...}} (`init_deep_prompt`), and a prompt's {"prompt_encoder": ...}
        (`init_prompt_encoder`, with step_config.prompt_encoder); see
        jaxprompt.prompts.trainable. Evaluation and the prompt files see it folded.
      train_batches: a function position -> iterator of batches, or a re-iterable.
      output_dir: checkpoints, metrics.jsonl, TensorBoard events, learning_curve.png.
      eval_batches: a function returning validation batches (validation loss).
      eval_fn: (trainable tree, frozen params as placed on the mesh) -> task metrics
        (e.g. accuracy); merged with the validation loss.
      model_path: recorded in model_info.json and every prompt directory's jaxprompt.json.
      prompt_use: how the prompt is used, recorded in jaxprompt.json (PromptInfo fields:
        vocabulary, task, labels, decoding, lengths); None: model and placement only.

    One run per output directory (a lock; a second run stops at once). SIGINT/SIGTERM are
    acted on between steps: the state is saved and TrainingInterrupted raised.
    """
    lock = run_lock(output_dir, "jaxprompt train") if is_leader() else contextlib.nullcontext()
    with lock, interrupts.deferred_interrupts():
        return _train(model_config, frozen_params, trainable, train_batches, output_dir,
                      optimizer_config, step_config, trainer_config, eval_batches, eval_fn,
                      model_path, prompt_use)


def _prompt_info(model_path, model_config, frozen_params, trainable, step_config,
                 prompt_use) -> PromptInfo:
    """What the run's prompt directories record; `trainable` as they hold it (folded)."""
    # A folded tree is the same tree without its encoder: the prompt keeps its shape.
    shapes = {k: v for k, v in trainable_shapes(trainable).items() if k != "prompt_encoder"}
    method = {("prompt",): "prompt_tuning", ("deep_prompt",): "deep_prompt"}.get(
        tuple(sorted(shapes)), "prompt_and_deep_prompt")
    if step_config.prompt_encoder is not None:
        method = f"{method} with {step_config.prompt_encoder.kind} (folded)"
    return PromptInfo(model={"path": model_path, "architecture": model_config.architecture(),
                             "fingerprint": content_fingerprint(frozen_params)},
                      prompt_mode=step_config.prompt_mode, trainable=shapes, method=method,
                      **(prompt_use or {}))


def _train(model_config, frozen_params, trainable, train_batches, output_dir, optimizer_config,
           step_config, trainer_config, eval_batches, eval_fn, model_path,
           prompt_use) -> TrainResult:
    tc = trainer_config
    trainable = as_trainable(trainable)
    try:
        check_trainable(trainable, model_config)
    except PromptError as e:
        raise TrainingError(str(e)) from e
    sharded, optimizer, _ = build_steps(model_config, trainable, optimizer_config, step_config,
                                      tc.mesh_shape, tc.logical_axis_rules)
    state = init_train_state(trainable, optimizer, tc.seed)
    info = {"model": model_path, "architecture": model_config.architecture(),
            "fingerprint": frozen_fingerprint(frozen_params),
            "prompt_shape": trainable_shapes(trainable).get("prompt"),
            "prompt_mode": step_config.prompt_mode,
            "execution": execution_settings(model_config, tree_dtype(frozen_params),
                                            tc.mesh_shape)}
    if "deep_prompt" in trainable:  # Older runs' model_info.json has no such key.
        info["deep_prompt_shapes"] = trainable_shapes(trainable)["deep_prompt"]
    if step_config.prompt_encoder is not None:  # Nor this one.
        info["prompt_encoder"] = dataclasses.asdict(step_config.prompt_encoder)
    check_or_write_model_info(output_dir, info)

    folded = functools.partial(fold, config=step_config.prompt_encoder)
    checkpointer = PromptCheckpointer(
        output_dir, tc.keep_latest, _prompt_info(model_path, model_config, frozen_params,
                                                 trainable, step_config, prompt_use),
        tc.eval_metric, folded)
    meta = {"data_position": 0, "best_metric": None, "best_step": None, "stale_evals": 0}
    if checkpointer.latest_step() is not None:
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                state, sharded.state_shardings)
        state, meta = checkpointer.restore(abstract)
        logger.info("Resuming %s from step %d.", output_dir, int(fetch(state.step)))
    else:
        state = place(state, sharded.state_shardings)
    frozen = place(model_layout(frozen_params, model_config), sharded.frozen_shardings)
    log = MetricsLog(output_dir, enabled=is_leader())
    loop = _Loop(tc, sharded, checkpointer, log, frozen, meta, eval_batches,
                 eval_fn and (lambda trainable, frozen: eval_fn(folded(trainable), frozen)))
    try:
        state, stopped_early = loop.run(state, _batches_from(train_batches, meta["data_position"]))
    finally:
        log.close()
        if is_leader():
            plot_learning_curve(output_dir, tc.eval_metric if eval_fn else "loss")
        checkpointer.close()
    return TrainResult(state, int(fetch(state.step)), loop.meta["best_step"],
                       loop.meta["best_metric"],
                       output_dir, checkpointer.best_prompt_path(), stopped_early,
                       checkpointer.best_prompt_path(DEEP_PROMPT_FILE), tc.eval_metric)


class _Loop:
    """The mutable parts of one training run, kept apart from the pure steps."""

    def __init__(self, tc: TrainerConfig, sharded, checkpointer: PromptCheckpointer,
                 log: MetricsLog, frozen, meta: dict, eval_batches, eval_fn):
        self.tc, self.sharded, self.checkpointer, self.log = tc, sharded, checkpointer, log
        self.frozen, self.meta = frozen, dict(meta)
        self.eval_batches, self.eval_fn = eval_batches, eval_fn
        self.last_saved = None

    def run(self, state: TrainState, batches: Iterator[dict]) -> tuple[TrainState, bool]:
        tc = self.tc
        step = int(fetch(state.step))
        bar = tqdm(total=tc.steps, initial=step, disable=not (tc.progress and is_leader()),
                   unit="step",
                   dynamic_ncols=True, desc="train")
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
                    logger.warning("Training data ran out at step %d of %d; stopping. Make the "
                                   "source repeat to train longer.", step, tc.steps)
                    break
                _check_batch(batch, step)
                examples = len(batch["encoder_input_tokens"])
                state, metrics = self.sharded.train_step(
                    state, self.frozen, global_batch(batch, self.sharded.batch_sharding))
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
                    record = {"loss": float(np.mean(window_loss)),
                              "examples_per_second": window_examples / max(elapsed, 1e-9),
                              "steps_per_second": len(window_loss) / max(elapsed, 1e-9),
                              "grad_norm": float(fetch(metrics["grad_norm"]))}
                    self.log.write(step, "train", record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}",
                                    ex_s=f"{record['examples_per_second']:.1f}")
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
                + (f"the last good checkpoint is step {kept} in {self.checkpointer.output_dir}."
                   if kept is not None else "no checkpoint had been saved yet.")
                + " Lower the learning rate or check the data for empty targets.")
        return loss

    def _evaluate(self, step: int, state: TrainState) -> bool:
        """Validates, logs, saves a new best; returns True when early stopping triggers."""
        metrics: dict[str, float] = {}
        if self.eval_batches is not None:
            metrics.update(validation_loss(self.sharded, state.trainable, self.frozen,
                                           self.eval_batches))
        if self.eval_fn is not None:
            metrics.update(self.eval_fn(state.trainable, self.frozen))
        if not metrics:
            return False
        self.log.write(step, "validation", metrics)
        key = self.tc.eval_metric
        if key not in metrics:
            raise TrainingError(f"eval_metric {key!r} is not among the validation metrics "
                                f"{sorted(metrics)}; set TrainerConfig.eval_metric.")
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
        return bool(self.tc.early_stopping_evals
                    and self.meta["stale_evals"] >= self.tc.early_stopping_evals)

    def _interrupted(self, step: int, state: TrainState, signum: int):
        """Saves the state of `step` (its prompt, rng and data position belong together)."""
        self._save(step, state)
        name = signal.Signals(signum).name
        raise interrupts.TrainingInterrupted(
            f"Interrupted ({name}) at step {step}; saved checkpoint {step} in "
            f"{self.checkpointer.output_dir}. Run the same command again to resume.", signum)

    def _save(self, step: int, state: TrainState, best: bool = False) -> None:
        """Saves, unless the trainable tree is not finite: then nothing is written and the
        run stops, naming the last checkpoint (all of them finite)."""
        finite = all(np.isfinite(np.asarray(fetch(leaf))).all()
                     for leaf in jax.tree.leaves(state.trainable))
        if not finite:
            kept = self.checkpointer.latest_step()
            raise TrainingError(
                f"The trainable parameters are not finite at step {step}; nothing was saved. "
                + (f"The last checkpoint with a finite prompt is step {kept} in "
                   f"{self.checkpointer.output_dir}." if kept is not None
                   else "No checkpoint had been saved yet.")
                + " Lower the learning rate or clip updates.")
        self.checkpointer.save(step, state, dict(self.meta), best=best)


__all__ = ["TrainerConfig", "TrainResult", "TrainingError", "train", "validation_loss"]
