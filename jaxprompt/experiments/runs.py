"""One prompt-tuning run from its settings: what `jaxprompt train`, `jaxprompt plan`, the
quickstart and the method comparison share.

`RunSettings` holds the run's own settings (gin's `train.*`); a `Run` adds the optimizer,
step, trainer and T5Config bindings. `prompt_tune(run)` loads the model and data and
trains; `plan_inputs(run, ...)` gives the planner the same model config and trainable
shapes without reading any weights. Both go through jaxprompt.training.build.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from jaxprompt.config import ConfigError, T5Config
from jaxprompt.training.build import execution_config
from jaxprompt.training.loop import TrainerConfig, TrainResult
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import StepConfig


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """A run's model, task, prompt, batch and lengths (gin: `train.*`)."""

    model: str | None = None  # "tiny", a Hub id, a Hugging Face T5 dir, a T5X checkpoint, a preset
    task: Any = None  # a task name or a jaxprompt.data.TextTask (gin: @from_files())
    output_dir: str | None = None
    data_dir: str | None = None
    download: bool = False  # a built-in task found nowhere locally is downloaded
    vocabulary: str | None = None  # SentencePiece model; default: the model's own, else T5's
    prompt_length: int = 100
    prompt_init: str = "class_labels"
    prompt_text: str | None = None
    prompt_file: str | None = None
    batch_size: int = 32
    inputs_length: int = 512
    targets_length: int = 16
    eval_split: str | None = "validation"
    eval_method: str | None = None
    eval_batch_size: int | None = None
    max_eval_examples: int | None = None
    select_by: str = "task_metric"  # or "loss"
    dtype: str | None = None  # dtype of the frozen weights on device; None: as stored
    max_encoder_length: int = 1024
    strict_truncation: bool = False
    # Residual reparameterization of the prompt (jaxprompt.prompts.reparam): None or
    # "residual_mlp", with its options; folded into the prompt at every save.
    prompt_encoder: str | None = None
    prompt_encoder_bottleneck: int = 800
    prompt_encoder_activation: str = "relu"
    prompt_encoder_layer_norm: bool = True
    prompt_encoder_dropout: float = 0.0
    prompt_encoder_norm_scale_init: float = 1.0  # 0: the residual branch starts at zero
    deep_prompt_length: int = 0  # > 0: also a deep prompt in every encoder layer
    deep_prompt_decoder: bool = False
    shard_by_process: bool = True  # each host of a pod slice reads only its rows

    def __post_init__(self):
        from jaxprompt.prompts.init import PromptError
        from jaxprompt.prompts.trainable import check_prompt_use

        try:
            check_prompt_use(
                max(self.prompt_length, 1),
                self.inputs_length,
                self.max_encoder_length,
                "train.prompt_length",
            )
        except PromptError as e:
            raise ConfigError(str(e)) from None
        if not self.prompt_length and not self.deep_prompt_length:
            raise ConfigError("prompt_length and deep_prompt_length are both 0: nothing to train.")
        if self.prompt_encoder is not None:
            if not self.prompt_length:
                raise ConfigError(
                    "train.prompt_encoder reparameterizes the prompt; train.prompt_length is 0."
                )
            try:
                self.encoder_config()
            except ValueError as e:
                raise ConfigError(f"train.{e}") from None
        if self.select_by not in ("task_metric", "loss"):
            raise ConfigError(f"select_by must be 'task_metric' or 'loss', got {self.select_by!r}.")

    def encoder_config(self):
        """The PromptEncoderConfig of train.prompt_encoder*, or None."""
        if self.prompt_encoder is None:
            return None
        from jaxprompt.prompts.reparam import PromptEncoderConfig

        return PromptEncoderConfig(
            self.prompt_encoder,
            self.prompt_encoder_bottleneck,
            self.prompt_encoder_activation,
            self.prompt_encoder_layer_norm,
            self.prompt_encoder_dropout,
            self.prompt_encoder_norm_scale_init,
        )


@dataclasses.dataclass(frozen=True)
class Run:
    settings: RunSettings
    optimizer: OptimizerConfig = OptimizerConfig()
    step: StepConfig = StepConfig()
    trainer: TrainerConfig = TrainerConfig()
    # The model config's fields bound in gin (`T5Config.*` or `DecoderConfig.*`) and that
    # class's name: execution settings, or architecture checks against the checkpoint.
    model_bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_bindings_class: str = "T5Config"


def model_config(run: Run, checkpoint_config):
    """The checkpoint's architecture (T5Config or DecoderConfig) with the run's execution
    settings; bindings of the other family's class are refused."""
    kind = type(checkpoint_config).__name__
    if run.model_bindings and run.model_bindings_class != kind:
        names = ", ".join(f"{run.model_bindings_class}.{k}" for k in run.model_bindings)
        raise ConfigError(
            f"{names} bound, but the model {run.settings.model!r} is a {kind}: bind "
            f"{kind}.* instead (the same fields: dtype, scan_layers, remat_policy)."
        )
    return execution_config(
        checkpoint_config, run.model_bindings, f"the model {run.settings.model!r}"
    )


def _check_context(s: RunSettings, config) -> None:
    """A decoder-only model: prompt + BOS + inputs + targets within its context."""
    from jaxprompt.prompts.init import PromptError
    from jaxprompt.prompts.trainable import check_prompt_use

    try:
        check_prompt_use(
            max(s.prompt_length, 1),
            s.inputs_length,
            s.max_encoder_length,
            "train.prompt_length",
            config=config,
            targets_length=s.targets_length,
        )
    except PromptError as e:
        raise ConfigError(str(e)) from None


def step_config(run: Run) -> StepConfig:
    """The run's StepConfig with its prompt encoder's options (what train and plan run)."""
    return dataclasses.replace(run.step, prompt_encoder=run.settings.encoder_config())


def trainable_shapes(run: Run, config: T5Config) -> dict:
    """The trainable tree as ShapeDtypeStructs: {"prompt": [P, H]}, {"deep_prompt": ...}."""
    import jax
    import jax.numpy as jnp

    from jaxprompt.models.deep_prompt_spec import expected_shapes

    s = run.settings
    shapes = {}
    if s.prompt_length:
        shapes["prompt"] = jax.ShapeDtypeStruct((s.prompt_length, config.d_model), jnp.float32)
    if s.prompt_encoder is not None:
        from jaxprompt.prompts.reparam import init_prompt_encoder

        shapes["prompt_encoder"] = jax.eval_shape(
            lambda: init_prompt_encoder(jax.random.key(0), config.d_model, s.encoder_config())
        )
    if s.deep_prompt_length:
        shapes["deep_prompt"] = {
            name: jax.ShapeDtypeStruct(shape, jnp.float32)
            for name, shape in expected_shapes(
                config, s.deep_prompt_length, decoder=s.deep_prompt_decoder
            ).items()
        }
    return shapes


def recorded_model_path(model: str | None) -> str | None:
    """What model_info.json names: "tiny", a named model of an extra ("gemma-3-270m") and
    remote paths as given, a Hub id pinned to the commit it resolved to (org/name@<commit>),
    local paths absolute."""
    from jaxprompt.checkpoints.gguf_file import NAMED_MODELS
    from jaxprompt.checkpoints.hub import is_hub_id, pinned_id

    if model is None or model in ("tiny", "t5_tiny_lm", *NAMED_MODELS) or "://" in model:
        return model
    if is_hub_id(model):
        return pinned_id(model)
    return os.path.abspath(model)


def prompt_tune(run: Run, loaded: tuple[T5Config, dict] | None = None, vocab=None) -> TrainResult:
    """Loads the model (unless `loaded` = (checkpoint config, params)), the task and the
    vocabulary (unless `vocab` is given), initialises the prompt and trains it."""
    import jax

    from jaxprompt import data, evaluation, partitioning
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.models.family import family_of
    from jaxprompt.prompts.deep import init_deep_prompt
    from jaxprompt.prompts.init import PromptConfig, init_prompt
    from jaxprompt.prompts.trainable import make_trainable
    from jaxprompt.training.loop import train

    s, tc = run.settings, run.trainer
    missing = [
        k
        for k, v in (("model", s.model or loaded), ("task", s.task), ("output_dir", s.output_dir))
        if v is None or v == ""
    ]
    if missing:
        raise ConfigError(f"train.{missing[0]} is required (missing: {missing}).")
    if s.data_dir or s.download:
        data.set_data_dir(s.data_dir, download=s.download)
    task = s.task if isinstance(s.task, data.TextTask) else data.get_task(s.task)

    def frozen_shardings(checkpoint_config):  # T5X checkpoints: each host reads its slices.
        mesh = partitioning.make_mesh(tc.mesh_shape)
        family = family_of(checkpoint_config)
        return partitioning.tree_shardings(
            family.param_shapes(checkpoint_config),
            family.param_axes(checkpoint_config),
            mesh,
            tc.logical_axis_rules or partitioning.DEFAULT_RULES,
        )

    if loaded is None:
        from jaxprompt.checkpoints import read_model_shapes

        # Bad bindings and a sequence beyond the model's context: refused before loading.
        _check_context(s, model_config(run, read_model_shapes(s.model)[0]))
        dtype = None if s.dtype is None else jax.numpy.dtype(s.dtype)
        loaded = load_pretrained(s.model, dtype=dtype, shardings=frozen_shardings)
    checkpoint_config, params = loaded
    config = model_config(run, checkpoint_config)
    _check_context(s, config)
    from jaxprompt.checkpoints import model_vocabulary

    vocab = vocab or data.vocabulary(model_vocabulary(s.model, s.vocabulary))
    data.check_vocabulary(vocab, config)
    lengths = data.Lengths(s.inputs_length, s.targets_length)
    report = data.truncation_report(task, "train", vocab, lengths, s.strict_truncation)
    if tc.progress:
        print(f"{task.name} train: {report} at lengths {lengths.as_dict()}.")

    prompt = deep_prompt = encoder = None
    if s.prompt_encoder is not None:
        from jaxprompt.prompts.reparam import init_prompt_encoder

        encoder = init_prompt_encoder(
            jax.random.key(tc.seed + 2), config.d_model, s.encoder_config()
        )
    if s.prompt_length:
        prompt_config = PromptConfig(
            length=s.prompt_length,
            init=s.prompt_init,
            file=s.prompt_file,
            label_token_ids=tuple(
                tuple(vocab.encode(getattr(vocab, "target_prefix", "") + w))
                for w in (task.label_names or ())
            ),
            text_token_ids=tuple(vocab.encode(s.prompt_text)) if s.prompt_text else (),
        )
        prompt = init_prompt(
            jax.random.key(tc.seed),
            params["token_embedder"]["embedding"],
            prompt_config,
            embedding_scale=family_of(config).embedding_scale(config),
        )
    if s.deep_prompt_length:
        deep_prompt = init_deep_prompt(
            jax.random.key(tc.seed + 1),
            params,
            checkpoint_config,
            s.deep_prompt_length,
            decoder=s.deep_prompt_decoder,
        )

    eval_batches = eval_fn = None
    eval_batch_size = s.eval_batch_size or s.batch_size
    if s.eval_split and s.eval_split in task.splits:
        eval_batches = data.eval_batches(
            task.name,
            s.eval_split,
            eval_batch_size,
            lengths,
            vocab=vocab,
            max_examples=s.max_eval_examples,
        )
        # On a pod slice validation runs on every host over the training mesh.
        eval_mesh = partitioning.make_mesh(tc.mesh_shape) if jax.process_count() > 1 else None

        def eval_fn(trainable, frozen):
            return evaluation.evaluate(
                config,
                frozen,
                trainable,
                task,
                vocab,
                mesh=eval_mesh,
                split=s.eval_split,
                method=s.eval_method,
                lengths=lengths,
                batch_size=eval_batch_size,
                prompt_mode=run.step.prompt_mode,
                max_examples=s.max_eval_examples,
            ).metrics

        if s.select_by == "task_metric" and tc.eval_metric == "loss":
            tc = dataclasses.replace(tc, eval_metric=task.metrics[0], eval_mode="max")
    shard = (
        dict(shard_index=jax.process_index(), num_shards=jax.process_count())
        if s.shard_by_process
        else {}
    )
    return train(
        model_config=config,
        frozen_params=params,
        prompt_use=prompt_use(task, vocab, lengths, s.eval_method),
        trainable=make_trainable(prompt, deep_prompt, encoder),
        train_batches=data.train_batches(
            task.name, s.batch_size, lengths, seed=tc.seed, vocab=vocab, **shard
        ),
        output_dir=s.output_dir,
        optimizer_config=run.optimizer,
        step_config=step_config(run),
        trainer_config=tc,
        eval_batches=eval_batches,
        eval_fn=eval_fn,
        model_path=recorded_model_path(s.model),
    )


def prompt_use(task, vocab, lengths, method: str | None) -> dict:
    """What a run's prompt directories record of how the prompt is used (PromptInfo)."""
    from jaxprompt.data.vocabulary import vocabulary_fingerprint
    from jaxprompt.prompts.artifact import task_record

    return {
        "vocabulary": {
            "path": getattr(vocab, "path", None),
            "fingerprint": vocabulary_fingerprint(vocab),
        },
        "task": task_record(task),
        "labels": list(task.label_names) if task.label_names else None,
        "decoding": method or ("rank" if task.label_names else "greedy"),
        "lengths": {"inputs": lengths.inputs, "targets": lengths.targets},
    }


__all__ = [
    "Run",
    "RunSettings",
    "model_config",
    "prompt_tune",
    "recorded_model_path",
    "step_config",
    "trainable_shapes",
]
