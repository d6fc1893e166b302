"""`jaxprompt train`: gin is bound here, at the edge, and nowhere else.

  jaxprompt train --gin_file=runs/prompt_tuning.gin --gin.train.model="'/path/t5'" \\
      --gin.train.task="'super_glue_rte'" --output_dir=/tmp/rte
"""

from __future__ import annotations

import dataclasses
import os

import gin

from jaxprompt.cli.common import CliError
from jaxprompt.config import T5Config
from jaxprompt.training.loop import TrainerConfig
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import StepConfig

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "gin_configs")
_REGISTERED = False


def register_gin_configurables() -> None:
    """Makes jaxprompt's configuration classes and entry points bindable (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    for cls in (T5Config, OptimizerConfig, StepConfig, TrainerConfig):
        gin.external_configurable(cls, cls.__name__)
    gin.external_configurable(train_run, "train")
    gin.external_configurable(user_files_task, "from_files")
    if os.path.isdir(REPO_GIN_DIR):
        gin.add_config_file_search_path(REPO_GIN_DIR)
    _REGISTERED = True


def user_files_task(train: str | None = None, validation: str | None = None,
                    test: str | None = None, input_template: str = "{text}",
                    target_field: str = "label", verbalizer: dict | None = None,
                    name: str = "user_task"):
    """gin's `@from_files()`: jaxprompt.data.from_files, imported only when used."""
    from jaxprompt.data.user_files import from_files
    return from_files(train=train, validation=validation, test=test,
                      input_template=input_template, target_field=target_field,
                      verbalizer=verbalizer, name=name)


def parse_gin(files: list[str], bindings: list[str]) -> None:
    """Parses gin files (paths, or relative to gin_configs/) and KEY=VALUE bindings."""
    register_gin_configurables()
    try:
        with gin.unlock_config():
            gin.clear_config()  # One CLI invocation, one configuration.
            gin.parse_config_files_and_bindings(files, bindings)
    except (ValueError, OSError, SyntaxError) as e:
        raise CliError(f"gin configuration: {e}") from e


def _configured(name: str):
    return gin.get_configurable(name)()


def train_run(output_dir: str = gin.REQUIRED, model: str = gin.REQUIRED,
              task=gin.REQUIRED, data_dir: str | None = None, vocabulary: str | None = None,
              prompt_length: int = 100, prompt_init: str = "class_labels",
              prompt_text: str | None = None, prompt_file: str | None = None,
              batch_size: int = 32, inputs_length: int = 512, targets_length: int = 16,
              eval_split: str | None = "validation", eval_method: str | None = None,
              eval_batch_size: int | None = None, max_eval_examples: int | None = None,
              select_by: str = "task_metric", dtype: str | None = None,
              max_encoder_length: int = 1024, strict_truncation: bool = False,
              deep_prompt_length: int = 0, deep_prompt_decoder: bool = False):
    """Prompt-tunes `model` on `task` (a task name or @from_files()); see gin_configs/runs/.

    deep_prompt_length > 0 also trains a deep prompt (keys and values in every encoder
    layer; decoder self-attention too with deep_prompt_decoder); prompt_length 0 trains
    the deep prompt alone (prefix tuning).
    """
    import jax

    from jaxprompt import data, evaluation, partitioning
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.prompts.deep import init_deep_prompt
    from jaxprompt.prompts.init import PromptConfig, init_prompt
    from jaxprompt.prompts.trainable import DEEP_PROMPT_FILE, PROMPT_FILE, make_trainable
    from jaxprompt.training.loop import train

    trainer_config: TrainerConfig = _configured("TrainerConfig")
    if data_dir:
        data.set_data_dir(data_dir)
    vocab_path = vocabulary or data.DEFAULT_VOCABULARY
    task = task if isinstance(task, data.TextTask) else data.get_task(task)

    def frozen_shardings(config):  # T5X checkpoints: each host reads only its slices.
        from jaxprompt import partitioning
        from jaxprompt.models.t5 import logical_axes, param_shapes
        mesh = partitioning.make_mesh(trainer_config.mesh_shape)
        return partitioning.tree_shardings(param_shapes(config), logical_axes(config), mesh)

    config, params = load_pretrained(model, dtype=None if dtype is None else jax.numpy.dtype(dtype),
                                     shardings=frozen_shardings)
    vocab = data.vocabulary(vocab_path)
    data.check_vocabulary(vocab, config.vocab_size)
    if prompt_length + inputs_length > max_encoder_length:
        raise CliError(f"prompt_length {prompt_length} + inputs_length {inputs_length} exceeds "
                       f"max_encoder_length {max_encoder_length}; shorten one of them.")
    lengths = data.Lengths(inputs_length, targets_length)
    report = data.truncation_report(task, "train", vocab, lengths, strict_truncation)
    print(f"{task.name} train: {report} at lengths {lengths.as_dict()}.")

    prompt = deep_prompt = None
    if prompt_length:
        prompt_config = PromptConfig(
            length=prompt_length, init=prompt_init, file=prompt_file,
            label_token_ids=tuple(tuple(vocab.encode(w)) for w in (task.label_names or ())),
            text_token_ids=tuple(vocab.encode(prompt_text)) if prompt_text else ())
        prompt = init_prompt(jax.random.key(trainer_config.seed),
                             params["token_embedder"]["embedding"], prompt_config)
    if deep_prompt_length:
        deep_prompt = init_deep_prompt(jax.random.key(trainer_config.seed + 1), params, config,
                                       deep_prompt_length, decoder=deep_prompt_decoder)
    if prompt is None and deep_prompt is None:
        raise CliError("prompt_length and deep_prompt_length are both 0: nothing to train.")
    trainable = make_trainable(prompt, deep_prompt)

    eval_batches = eval_fn = None
    if eval_split and eval_split in task.splits:
        eval_batches = data.eval_batches(task.name, eval_split, eval_batch_size or batch_size,
                                         lengths, vocab=vocab)

        # On a pod slice validation runs on every host over the training mesh.
        eval_mesh = (partitioning.make_mesh(trainer_config.mesh_shape)
                     if jax.process_count() > 1 else None)

        def task_metrics(trainable, frozen):
            return evaluation.evaluate(config, frozen, trainable, task, vocab, mesh=eval_mesh,
                                       split=eval_split, method=eval_method, lengths=lengths,
                                       batch_size=eval_batch_size or batch_size,
                                       prompt_mode=_configured("StepConfig").prompt_mode,
                                       max_examples=max_eval_examples).metrics

        eval_fn = task_metrics

        if select_by == "task_metric" and trainer_config.eval_metric == "loss":
            trainer_config = dataclasses.replace(trainer_config, eval_metric=task.metrics[0],
                                                 eval_mode="max")
    result = train(model_config=config, frozen_params=params, trainable=trainable,
                   train_batches=data.train_batches(task.name, batch_size, lengths,
                                                    seed=trainer_config.seed,
                                                    shard_index=jax.process_index(),
                                                    num_shards=jax.process_count(),
                                                    vocab=vocab),
                   output_dir=output_dir, optimizer_config=_configured("OptimizerConfig"),
                   step_config=_configured("StepConfig"), trainer_config=trainer_config,
                   eval_batches=eval_batches, eval_fn=eval_fn,
                   model_path=model if "://" in model else os.path.abspath(model))
    step_dir = os.path.join(output_dir, "checkpoints", str(result.step))
    print(f"Trained {result.step} steps. Best {trainer_config.eval_metric}: "
          f"{result.best_metric} at step {result.best_step}.")
    if prompt is not None:
        best = result.best_prompt_path or os.path.join(step_dir, PROMPT_FILE)
        print(f"Prompt: {best}\nExport it for PyTorch/PEFT: jaxprompt export --prompt {best} "
              f"--format peft --out {os.path.join(output_dir, 'peft_prompt')}")
    if deep_prompt is not None:
        best = result.best_deep_prompt_path or os.path.join(step_dir, DEEP_PROMPT_FILE)
        print(f"Deep prompt: {best} (use it with jaxprompt eval/predict --deep_prompt; PEFT "
              "cannot hold T5 encoder prefixes, see the README)")
    return result


def run(args) -> int:
    from jaxprompt.distributed import maybe_initialize
    maybe_initialize({"auto": None, "on": True, "off": False}[args.multihost])
    bindings = list(args.gin_bindings)
    if args.output_dir:
        bindings.append(f"train.output_dir = {args.output_dir!r}")
    parse_gin(args.gin_file, bindings)
    try:
        _configured("train")
    except (ValueError, TypeError) as e:
        if "REQUIRED" in str(e) or "required" in str(e):
            raise CliError(f"gin configuration: {e}") from e
        raise
    return 0


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="prompt-tune a frozen T5 (gin-configured)")
    train.add_argument("--gin_file", action="append", default=[],
                       help="gin file (path, or relative to gin_configs/); repeatable")
    train.add_argument("--output_dir", help="checkpoints and logs; resumes if it holds a run")
    train.add_argument("--multihost", choices=["auto", "on", "off"], default="auto",
                       help="call jax.distributed.initialize() (auto: on multi-host TPU slices)")
    train.set_defaults(func=run, gin_bindings=[])
