"""The training loop: steps, evaluation, best/latest checkpoints, resume, progress, logs.

`train(...)` takes explicit arguments (no gin); `jaxprompt train` binds them from gin.
Determinism: the data order is a function of the position (batches consumed) and the
dropout rng of step s is fold_in(seed key, s), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from typing import Callable, Iterable

import jax

from jaxprompt.checkpoints.fingerprints import content_fingerprint, frozen_fingerprint
from jaxprompt.training.checkpointer import PromptCheckpointer, check_or_write_model_info
from jaxprompt.prompts.artifact import PromptInfo
from jaxprompt.prompts.reparam import fold
from jaxprompt.config import T5Config
from jaxprompt.prompts.init import PromptError
from jaxprompt.prompts.trainable import DEEP_PROMPT_FILE, as_trainable, check_trainable
from jaxprompt.prompts.trainable import shapes as trainable_shapes
from jaxprompt.distributed import fetch, is_leader, place
from jaxprompt.training.metrics_log import MetricsLog, plot_learning_curve
from jaxprompt.training import interrupts
from jaxprompt.training.run_lock import run_lock
from jaxprompt.training.build import build_steps, execution_settings, model_layout, tree_dtype
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import StepConfig, init_train_state
from jaxprompt.training.loop_config import (
    BatchSource,
    TrainerConfig,
    TrainingError,
    TrainResult,
    batches_from,
    validation_loss,
)
from jaxprompt.training.loop_cycle import RunCycle

logger = logging.getLogger(__name__)


def train(
    *,
    model_config: T5Config,
    frozen_params: dict,
    trainable: dict,
    train_batches: BatchSource,
    output_dir: str,
    optimizer_config: OptimizerConfig = OptimizerConfig(),
    step_config: StepConfig = StepConfig(),
    trainer_config: TrainerConfig = TrainerConfig(),
    eval_batches: Callable[[], Iterable[dict]] | None = None,
    eval_fn: Callable[[dict, dict], dict[str, float]] | None = None,
    model_path: str | None = None,
    prompt_use: dict | None = None,
) -> TrainResult:
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
        return _train(
            model_config,
            frozen_params,
            trainable,
            train_batches,
            output_dir,
            optimizer_config,
            step_config,
            trainer_config,
            eval_batches,
            eval_fn,
            model_path,
            prompt_use,
        )


def _prompt_info(
    model_path, model_config, frozen_params, trainable, step_config, prompt_use
) -> PromptInfo:
    """What the run's prompt directories record; `trainable` as they hold it (folded)."""
    # A folded tree is the same tree without its encoder: the prompt keeps its shape.
    shapes = {k: v for k, v in trainable_shapes(trainable).items() if k != "prompt_encoder"}
    method = {("prompt",): "prompt_tuning", ("deep_prompt",): "deep_prompt"}.get(
        tuple(sorted(shapes)), "prompt_and_deep_prompt"
    )
    if step_config.prompt_encoder is not None:
        method = f"{method} with {step_config.prompt_encoder.kind} (folded)"
    return PromptInfo(
        model={
            "path": model_path,
            "architecture": model_config.architecture(),
            "fingerprint": content_fingerprint(frozen_params),
        },
        prompt_mode=step_config.prompt_mode,
        trainable=shapes,
        method=method,
        **(prompt_use or {}),
    )


def _train(
    model_config,
    frozen_params,
    trainable,
    train_batches,
    output_dir,
    optimizer_config,
    step_config,
    trainer_config,
    eval_batches,
    eval_fn,
    model_path,
    prompt_use,
) -> TrainResult:
    tc = trainer_config
    trainable = as_trainable(trainable)
    try:
        check_trainable(trainable, model_config)
    except PromptError as e:
        raise TrainingError(str(e)) from e
    sharded, optimizer, _ = build_steps(
        model_config, trainable, optimizer_config, step_config, tc.mesh_shape, tc.logical_axis_rules
    )
    state = init_train_state(trainable, optimizer, tc.seed)
    info = {
        "model": model_path,
        "architecture": model_config.architecture(),
        "fingerprint": frozen_fingerprint(frozen_params),
        "prompt_shape": trainable_shapes(trainable).get("prompt"),
        "prompt_mode": step_config.prompt_mode,
        "execution": execution_settings(model_config, tree_dtype(frozen_params), tc.mesh_shape),
    }
    if "deep_prompt" in trainable:  # Older runs' model_info.json has no such key.
        info["deep_prompt_shapes"] = trainable_shapes(trainable)["deep_prompt"]
    if step_config.prompt_encoder is not None:  # Nor this one.
        info["prompt_encoder"] = dataclasses.asdict(step_config.prompt_encoder)
    check_or_write_model_info(output_dir, info)

    folded = functools.partial(fold, config=step_config.prompt_encoder)
    checkpointer = PromptCheckpointer(
        output_dir,
        tc.keep_latest,
        _prompt_info(model_path, model_config, frozen_params, trainable, step_config, prompt_use),
        tc.eval_metric,
        folded,
    )
    meta = {"data_position": 0, "best_metric": None, "best_step": None, "stale_evals": 0}
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        state,
        sharded.state_shardings,
    )
    for directory in checkpointer.repair(abstract):  # a kill between a commit and its files
        print(f"Rebuilt the prompt files of {directory} from its saved state.")
    if checkpointer.latest_step() is not None:
        state, meta = checkpointer.restore(abstract)
        logger.info("Resuming %s from step %d.", output_dir, int(fetch(state.step)))
    else:
        state = place(state, sharded.state_shardings)
    frozen = place(model_layout(frozen_params, model_config), sharded.frozen_shardings)
    log = MetricsLog(output_dir, enabled=is_leader())
    loop = RunCycle(
        tc,
        sharded,
        checkpointer,
        log,
        frozen,
        meta,
        eval_batches,
        eval_fn and (lambda trainable, frozen: eval_fn(folded(trainable), frozen)),
    )
    try:
        state, stopped_early = loop.run(state, batches_from(train_batches, meta["data_position"]))
    finally:
        log.close()
        if is_leader():
            plot_learning_curve(output_dir, tc.eval_metric if eval_fn else "loss")
        checkpointer.close()
    return TrainResult(
        state,
        int(fetch(state.step)),
        loop.meta["best_step"],
        loop.meta["best_metric"],
        output_dir,
        checkpointer.best_prompt_path(),
        stopped_early,
        checkpointer.best_prompt_path(DEEP_PROMPT_FILE),
        tc.eval_metric,
    )


__all__ = [
    "BatchSource",
    "TrainResult",
    "TrainerConfig",
    "TrainingError",
    "train",
    "validation_loss",
]
