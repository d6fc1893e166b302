"""One prompt-tuning run, start to test metric: the unit that quickstart, the method
comparison and the transfer matrix repeat."""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxprompt import data, evaluation
from jaxprompt.data.tasks import TextTask
from jaxprompt.experiments.runs import Run, RunSettings, prompt_tune
from jaxprompt.prompts.trainable import load_trainable
from jaxprompt.training.loop import TrainerConfig, TrainResult
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import StepConfig


@dataclasses.dataclass(frozen=True)
class RunConfig:
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 0.3
    eval_every: int = 250
    inputs_length: int = 64
    targets_length: int = 4
    seed: int = 0
    prompt_text: str | None = None  # the hard prompt of init "text"
    eval_split: str = "validation"
    test_split: str = "test"
    prompt_encoder: str | None = None  # "residual_mlp": residual reparameterization
    prompt_encoder_bottleneck: int = 800
    prompt_encoder_layer_norm: bool = True
    prompt_encoder_norm_scale_init: float = 1.0
    # Adafactor's relative step (update scaled by each parameter's RMS): off in the paper's
    # prompt recipe; a prompt encoder's small-scale weights need it (docs/convergence.md).
    multiply_by_parameter_scale: bool = False


def tune_and_evaluate(
    config,
    params,
    vocab,
    task: TextTask,
    prompt_length: int,
    init: str,
    run: RunConfig,
    output_dir: str,
    prompt_file: str | None = None,
    model_path: str | None = None,
    progress: bool = True,
    deep_prompt_length: int = 0,
    scoring: tuple | None = None,
) -> tuple[float, TrainResult, np.ndarray | None]:
    """Prompt-tunes on task's train split, keeps the best validation prompt, and returns
    (test metric of that prompt, the TrainResult, the prompt). `init` names an initializer
    of jaxprompt.prompts.init; class labels come from the task's verbalizer. With
    `deep_prompt_length` > 0 a deep prompt of that length is trained too (prompt_length 0:
    the deep prompt alone, as in prefix tuning / P-tuning v2). The run is built as
    `jaxprompt train` builds it (jaxprompt.experiments.runs.prompt_tune), with dropout off.
    `scoring`: (config, params) of the same model to score the test split with (e.g. in
    another compute dtype); None: those it trained with."""
    metric = task.metrics[0]
    settings = RunSettings(
        model=model_path,
        task=task,
        output_dir=output_dir,
        prompt_length=prompt_length,
        prompt_init=init,
        prompt_text=run.prompt_text,
        prompt_file=prompt_file,
        batch_size=run.batch_size,
        inputs_length=run.inputs_length,
        targets_length=run.targets_length,
        eval_split=run.eval_split,
        deep_prompt_length=deep_prompt_length,
        prompt_encoder=run.prompt_encoder,
        prompt_encoder_bottleneck=run.prompt_encoder_bottleneck,
        prompt_encoder_layer_norm=run.prompt_encoder_layer_norm,
        prompt_encoder_norm_scale_init=run.prompt_encoder_norm_scale_init,
    )
    trainer = TrainerConfig(
        steps=run.steps,
        eval_every=run.eval_every,
        log_every=25,
        eval_metric=metric,
        eval_mode="max",
        seed=run.seed,
        progress=progress,
    )
    optimizer = OptimizerConfig(
        learning_rate=run.learning_rate, multiply_by_parameter_scale=run.multiply_by_parameter_scale
    )
    result = prompt_tune(
        Run(settings, optimizer, StepConfig(enable_dropout=False), trainer),
        loaded=(config, params),
        vocab=vocab,
    )
    best = load_trainable(
        result.best_prompt_path if prompt_length else None,
        result.best_deep_prompt_path if deep_prompt_length else None,
        config,
    )
    test = evaluation.evaluate(
        *(scoring or (config, params)),
        best,
        task,
        vocab,
        split=run.test_split,
        lengths=data.Lengths(run.inputs_length, run.targets_length),
    ).metrics[metric]
    return test, result, (np.asarray(best["prompt"]) if "prompt" in best else None)
