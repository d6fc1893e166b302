"""One prompt-tuning run, start to test metric: the unit that quickstart, the method
comparison and the transfer matrix repeat."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxprompt import data, evaluation
from jaxprompt.data.tasks import TextTask
from jaxprompt.prompts.deep import init_deep_prompt
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.prompts.init import PromptConfig, init_prompt
from jaxprompt.prompts.trainable import load_trainable, make_trainable
from jaxprompt.training.step import StepConfig
from jaxprompt.training.loop import TrainerConfig, TrainResult, train


@dataclasses.dataclass(frozen=True)
class RunConfig:
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 0.3
    eval_every: int = 250
    inputs_length: int = 64
    targets_length: int = 4
    seed: int = 0
    eval_split: str = "validation"
    test_split: str = "test"


def label_token_ids(task: TextTask, vocab) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(vocab.encode(word)) for word in (task.label_names or ()))


def tune_and_evaluate(config, params, vocab, task: TextTask, prompt_length: int, init: str,
                      run: RunConfig, output_dir: str, prompt_file: str | None = None,
                      model_path: str | None = None, progress: bool = True,
                      deep_prompt_length: int = 0
                      ) -> tuple[float, TrainResult, np.ndarray | None]:
    """Prompt-tunes on task's train split, keeps the best validation prompt, and returns
    (test metric of that prompt, the TrainResult, the prompt). `init` names an initializer
    of jaxprompt.prompts.init; class labels come from the task's verbalizer. With
    `deep_prompt_length` > 0 a deep prompt of that length is trained too (prompt_length 0:
    the deep prompt alone, as in prefix tuning / P-tuning v2)."""
    lengths = data.Lengths(run.inputs_length, run.targets_length)
    prompt = deep_prompt = None
    if prompt_length:
        prompt_config = PromptConfig(length=prompt_length, init=init, file=prompt_file,
                                     label_token_ids=label_token_ids(task, vocab))
        prompt = init_prompt(jax.random.key(run.seed), params["token_embedder"]["embedding"],
                             prompt_config)
    if deep_prompt_length:
        deep_prompt = init_deep_prompt(jax.random.key(run.seed + 1), params, config,
                                       deep_prompt_length)
    metric = task.metrics[0]

    def eval_fn(trainable, frozen):
        return evaluation.evaluate(config, frozen, trainable, task, vocab, split=run.eval_split,
                                   lengths=lengths).metrics

    result = train(
        model_config=config, frozen_params=params,
        trainable=make_trainable(prompt, deep_prompt), model_path=model_path,
        train_batches=data.train_batches(task.name, run.batch_size, lengths, seed=run.seed,
                                         vocab=vocab),
        output_dir=output_dir, optimizer_config=OptimizerConfig(learning_rate=run.learning_rate),
        step_config=StepConfig(enable_dropout=False),
        eval_batches=data.eval_batches(task.name, run.eval_split, run.batch_size, lengths,
                                       vocab=vocab),
        eval_fn=eval_fn,
        trainer_config=TrainerConfig(steps=run.steps, eval_every=run.eval_every, log_every=25,
                                     eval_metric=metric, eval_mode="max", seed=run.seed,
                                     progress=progress))
    best = load_trainable(result.best_prompt_path if prompt is not None else None,
                          result.best_deep_prompt_path if deep_prompt is not None else None,
                          config)
    test = evaluation.evaluate(config, params, best, task, vocab, split=run.test_split,
                               lengths=lengths).metrics[metric]
    return test, result, (np.asarray(best["prompt"]) if "prompt" in best else None)
