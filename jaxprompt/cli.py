"""The `jaxprompt` command line. Gin is bound here, at the edge, and nowhere else.

  jaxprompt train --gin_file=runs/prompt_tuning.gin --gin.train.model="'/path/t5'" \\
      --gin.train.task="'super_glue_rte'" --output_dir=/tmp/rte
  jaxprompt eval --model /path/t5 --prompt /tmp/rte/best/3000/prompt.npy --task super_glue_rte
  jaxprompt predict --model /path/t5 --prompt p.npy --input in.jsonl --output preds.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

import gin

from jaxprompt.config import T5Config
from jaxprompt.optimizers import OptimizerConfig
from jaxprompt.train import StepConfig
from jaxprompt.trainer import TrainerConfig

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "gin_configs")
_REGISTERED = False


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


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

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.deep_prompts import DEEP_PROMPT_FILE, init_deep_prompt
    from jaxprompt.prompts import PromptConfig, init_prompt
    from jaxprompt.trainer import train

    trainer_config: TrainerConfig = _configured("TrainerConfig")
    if data_dir:
        data.set_data_dir(data_dir)
    vocab_path = vocabulary or data.DEFAULT_VOCABULARY
    task = task if isinstance(task, data.TextTask) else data.get_task(task)
    if vocabulary:
        data.register_seqio_task(task, vocab_path)
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

    eval_batches = eval_fn = None
    if eval_split and eval_split in task.splits:
        eval_batches = data.eval_batches(task.name, eval_split, eval_batch_size or batch_size,
                                         lengths)

        def eval_fn(trainable, frozen):
            return evaluation.evaluate(config, frozen, trainable.get("prompt"), task, vocab,
                                       split=eval_split, method=eval_method, lengths=lengths,
                                       batch_size=eval_batch_size or batch_size,
                                       prompt_mode=_configured("StepConfig").prompt_mode,
                                       max_examples=max_eval_examples,
                                       deep_prompt=trainable.get("deep_prompt")).metrics

        if select_by == "task_metric" and trainer_config.eval_metric == "loss":
            trainer_config = dataclasses.replace(trainer_config, eval_metric=task.metrics[0],
                                                 eval_mode="max")
    result = train(model_config=config, frozen_params=params, prompt=prompt,
                   deep_prompt=deep_prompt,
                   train_batches=data.train_batches(task.name, batch_size, lengths,
                                                    seed=trainer_config.seed,
                                                    shard_index=jax.process_index(),
                                                    num_shards=jax.process_count()),
                   output_dir=output_dir, optimizer_config=_configured("OptimizerConfig"),
                   step_config=_configured("StepConfig"), trainer_config=trainer_config,
                   eval_batches=eval_batches, eval_fn=eval_fn,
                   model_path=model if "://" in model else os.path.abspath(model))
    step_dir = os.path.join(output_dir, "checkpoints", str(result.step))
    print(f"Trained {result.step} steps. Best {trainer_config.eval_metric}: "
          f"{result.best_metric} at step {result.best_step}.")
    if prompt is not None:
        best = result.best_prompt_path or os.path.join(step_dir, "prompt.npy")
        print(f"Prompt: {best}\nExport it for PyTorch/PEFT: jaxprompt export --prompt {best} "
              f"--format peft --out {os.path.join(output_dir, 'peft_prompt')}")
    if deep_prompt is not None:
        best = result.best_deep_prompt_path or os.path.join(step_dir, DEEP_PROMPT_FILE)
        print(f"Deep prompt: {best} (use it with jaxprompt eval/predict --deep_prompt; PEFT "
              "cannot hold T5 encoder prefixes, see the README)")
    return result


def _cmd_train(args) -> int:
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


def _load_prompt_arg(path: str):
    from jaxprompt.prompt_files import load_prompt
    return load_prompt(path)


def _load_deep_prompt_arg(args, config):
    """--deep_prompt FILE.npz, checked against the model; None without the flag."""
    if not args.deep_prompt:
        return None
    if len(args.prompt or []) > 1:
        raise CliError("--deep_prompt cannot be combined with an ensemble of --prompt.")
    from jaxprompt.deep_prompts import load_deep_prompt
    return load_deep_prompt(args.deep_prompt, config)


def _cmd_eval(args) -> int:
    import jax.numpy as jnp

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained

    if args.data_dir:
        data.set_data_dir(args.data_dir)
    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(args.vocabulary or data.DEFAULT_VOCABULARY)
    data.check_vocabulary(vocab, config.vocab_size)
    task = data.get_task(args.task)
    if args.hard_prompt or args.shots:
        from jaxprompt.hard_prompts import with_hard_prompt
        task = with_hard_prompt(task, args.hard_prompt or "", args.shots, args.seed)
    prompts = [_load_prompt_arg(path) for path in args.prompt or []]
    for path, prompt in zip(args.prompt or [], prompts):
        if prompt.shape[1] != config.d_model:
            raise CliError(f"{path}: prompt width {prompt.shape[1]} != the model's d_model "
                           f"{config.d_model}.")
    if len(prompts) > 1:
        if not args.ensemble:
            raise CliError("Several --prompt need --ensemble vote|mean.")
        if len({p.shape for p in prompts}) > 1:
            raise CliError(f"Ensembled prompts must share a shape; got {[p.shape for p in prompts]}.")
        prompt = jnp.stack([jnp.asarray(p) for p in prompts])
    else:
        prompt = jnp.asarray(prompts[0]) if prompts else None
    result = evaluation.evaluate(config, params, prompt, task, vocab, split=args.split,
                                 method=args.method, batch_size=args.batch_size,
                                 lengths=data.Lengths(args.inputs_length, args.targets_length),
                                 max_examples=args.max_examples,
                                 ensemble=args.ensemble if len(prompts) > 1 else None,
                                 deep_prompt=_load_deep_prompt_arg(args, config))
    print(f"{task.name} ({args.split}, {len(result.examples)} examples, {result.method}"
          f"{', ensemble of %d (%s)' % (len(prompts), args.ensemble) if len(prompts) > 1 else ''}):")
    for name, value in result.metrics.items():
        print(f"  {name:<14} {value:8.2f}")
    out = args.output or "eval.json"
    with open(out, "w") as f:
        json.dump({"task": task.name, "split": args.split, "method": result.method,
                   "examples": len(result.examples), "metrics": result.metrics,
                   "model": args.model, "prompts": args.prompt, "ensemble": args.ensemble,
                   "deep_prompt": args.deep_prompt,
                   "hard_prompt": args.hard_prompt, "shots": args.shots}, f, indent=2)
    print(f"wrote {out}")
    return 0


def _cmd_predict(args) -> int:
    import jax.numpy as jnp

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.data.user_files import read_records

    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(args.vocabulary or data.DEFAULT_VOCABULARY)
    data.check_vocabulary(vocab, config.vocab_size)
    records = read_records(args.input)
    inputs = []
    for line, row in records:
        try:
            inputs.append(args.input_template.format(**row))
        except KeyError as e:
            raise CliError(f"{args.input}, line {line}: missing field {e} for --input_template "
                           f"{args.input_template!r}.") from None
    if args.prompt_bank:
        if args.deep_prompt:
            raise CliError("--prompt_bank serves input prompts; --deep_prompt cannot join it.")
        from jaxprompt.prompt_bank import load_bank, predict_mixed
        missing = [line for line, row in records if "task" not in row]
        if missing:
            raise CliError(f"{args.input}, line {missing[0]}: no 'task' field; with "
                           "--prompt_bank every line names its task.")
        bank = load_bank(args.prompt_bank)
        predictions = predict_mixed(config, params, bank, vocab, [r["task"] for _, r in records],
                                    inputs, inputs_length=args.inputs_length,
                                    targets_length=args.targets_length,
                                    batch_size=args.batch_size)
    else:
        prompt = jnp.asarray(_load_prompt_arg(args.prompt[0])) if args.prompt else None
        labels = tuple(args.labels.split(",")) if args.labels else None
        predictions = evaluation.predict(
            config, params, prompt, vocab, inputs, label_names=labels, method=args.method,
            batch_size=args.batch_size,
            lengths=data.Lengths(args.inputs_length, args.targets_length),
            deep_prompt=_load_deep_prompt_arg(args, config))
    with open(args.output, "w") as f:
        for text, prediction in zip(inputs, predictions):
            f.write(json.dumps({"inputs": text, "prediction": prediction}) + "\n")
    print(f"wrote {len(predictions)} predictions to {args.output}")
    return 0


def _cmd_export(args) -> int:
    from jaxprompt.export import export_prompt
    from jaxprompt.prompt_files import load_prompt

    if bool(args.checkpoint) == bool(args.prompt):
        raise CliError("Give exactly one of --checkpoint (a training output dir) or --prompt.")
    config = None
    if args.checkpoint:
        info_path = os.path.join(args.checkpoint, "model_info.json")
        best = os.path.join(args.checkpoint, "best")
        latest = os.path.join(args.checkpoint, "checkpoints")
        root = best if os.path.isdir(best) and os.listdir(best) else latest
        steps = sorted((int(d) for d in os.listdir(root) if d.isdigit()), reverse=True) \
            if os.path.isdir(root) else []
        if not steps:
            raise CliError(f"{args.checkpoint}: no checkpoint (expected best/<step>/ or "
                           "checkpoints/<step>/ as written by jaxprompt train).")
        source = os.path.join(root, str(steps[0]), "prompt.npy")
        if not os.path.exists(source):
            raise CliError(f"{os.path.join(root, str(steps[0]))} holds no prompt.npy: a deep "
                           "prompt alone cannot be exported (PEFT's PREFIX_TUNING reaches only "
                           "T5's decoder; see the README). Use its deep_prompt.npz with "
                           "jaxprompt eval/predict --deep_prompt.")
        if os.path.exists(info_path):
            with open(info_path) as f:
                architecture = json.load(f)["architecture"]
            config = T5Config(**architecture)
    else:
        source = args.prompt
    prompt = load_prompt(source)
    path = export_prompt(prompt, args.format, args.out, config=config, base_model=args.base_model)
    print(f"exported {source} {prompt.shape} as {args.format} to {path}")
    return 0


def _cmd_quickstart(args) -> int:
    from jaxprompt import quickstart
    config = quickstart.QuickstartConfig(output_dir=args.output_dir)
    if args.steps:
        config = dataclasses.replace(config, steps=args.steps)
    quickstart.run(config)
    return 0


def _describe_prompt(path: str, prompt) -> None:
    import numpy as np

    from jaxprompt.prompt_files import detect_format

    norms = np.linalg.norm(prompt, axis=1)
    print(f"{path}: {detect_format(path)} prompt, shape {prompt.shape} (P, H), float32 as read; "
          f"finite: {bool(np.isfinite(prompt).all())}")
    print(f"  row L2 norm: mean {norms.mean():.4g}, min {norms.min():.4g}, max {norms.max():.4g}")
    print("  per position: " + " ".join(f"{n:.3g}" for n in norms))


def _describe_model(path: str) -> None:
    import jax
    import numpy as np

    from jaxprompt.checkpoints import load_pretrained

    config, params = load_pretrained(path)
    leaves = jax.tree.leaves(params)
    count = sum(int(np.prod(x.shape)) for x in leaves)
    dtypes = sorted({str(x.dtype) for x in leaves})
    print(f"{path}: T5 checkpoint, {count:,} parameters ({', '.join(dtypes)})")
    for key, value in config.architecture().items():
        print(f"  {key:<32} {value}")


def _cmd_inspect(args) -> int:
    from jaxprompt.checkpoints.t5x import is_t5x_checkpoint
    from jaxprompt.prompt_files import PromptFileError, load_prompt

    path = args.path
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        _describe_model(path)
        return 0
    try:
        prompt = load_prompt(path)  # Read once: described, then (with --model) interpreted.
    except PromptFileError:
        if not is_t5x_checkpoint(path):
            raise
        _describe_model(path)  # A T5X checkpoint of a whole model, not a prompt.
        return 0
    _describe_prompt(path, prompt)
    if args.model:
        _neighbours(args, path, prompt)
    return 0


def _neighbours(args, path: str, prompt) -> None:
    from jaxprompt import data
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.interpretation import nearest_tokens, plot_similarity
    from jaxprompt.prompt_files import check_width

    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(args.vocabulary or data.DEFAULT_VOCABULARY)
    check_width(prompt, config.d_model, path)
    ids, scores = nearest_tokens(prompt, params["token_embedder"]["embedding"], args.neighbours,
                                 vocab_size=vocab.vocab_size)
    print(f"  nearest tokens by cosine similarity to {args.model}'s embedding:")
    for position, (row_ids, row_scores) in enumerate(zip(ids, scores)):
        words = ", ".join(f"{vocab.decode([int(i)]) or repr(vocab.tokenizer.id_to_piece(int(i)))}"
                          f" ({s:.2f})" for i, s in zip(row_ids, row_scores))
        print(f"  {position:4d}: {words}")
    heatmap = args.heatmap or os.path.splitext(os.path.basename(path.rstrip("/")))[0] + \
        "_similarity.png"
    print(f"  position similarity heatmap: {plot_similarity(prompt, heatmap)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxprompt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="prompt-tune a frozen T5 (gin-configured)")
    train.add_argument("--gin_file", action="append", default=[],
                       help="gin file (path, or relative to gin_configs/); repeatable")
    train.add_argument("--output_dir", help="checkpoints and logs; resumes if it holds a run")
    train.add_argument("--multihost", choices=["auto", "on", "off"], default="auto",
                       help="call jax.distributed.initialize() (auto: on multi-host TPU slices)")
    train.set_defaults(func=_cmd_train, gin_bindings=[])

    def model_flags(p, with_task=True):
        p.add_argument("--model", required=True, help="Hugging Face T5 directory")
        p.add_argument("--prompt", action="append",
                       help="prompt file (any format); repeat with --ensemble; none: bare model")
        p.add_argument("--deep_prompt", help="deep_prompt.npz of a deep-prompt run")
        p.add_argument("--vocabulary", help="SentencePiece model (default: bundled T5 vocab)")
        p.add_argument("--method", choices=["rank", "greedy"],
                       help="rank classification or greedy decoding (default by task)")
        p.add_argument("--batch_size", type=int, default=32)
        p.add_argument("--inputs_length", type=int, default=512)
        p.add_argument("--targets_length", type=int, default=16)

    evaluate = sub.add_parser("eval", help="evaluate a prompt on a task, write eval.json")
    model_flags(evaluate)
    evaluate.add_argument("--task", required=True, help="task name, e.g. super_glue_rte")
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--data_dir", help="folder with the original task files")
    evaluate.add_argument("--max_examples", type=int)
    evaluate.add_argument("--output", help="metrics JSON (default eval.json)")
    evaluate.add_argument("--ensemble", choices=["vote", "mean"],
                          help="combine several --prompt: majority vote or mean log-likelihood")
    evaluate.add_argument("--hard_prompt", help="text put before every input (no training)")
    evaluate.add_argument("--shots", type=int, default=0,
                          help="k training examples as demonstrations in every input")
    evaluate.add_argument("--seed", type=int, default=0, help="which demonstrations")
    evaluate.set_defaults(func=_cmd_eval)

    predict = sub.add_parser("predict", help="predictions for your own inputs")
    model_flags(predict)
    predict.add_argument("--input", required=True, help=".jsonl/.csv/.tsv of inputs")
    predict.add_argument("--output", required=True, help="predictions .jsonl")
    predict.add_argument("--input_template", default="{inputs}",
                         help="format of the model input from each row's fields")
    predict.add_argument("--labels", help="comma-separated candidate targets (rank)")
    predict.add_argument("--prompt_bank", help="directory of <task>.npy prompts (+ bank.json "
                                               "labels); each input line names its task")
    predict.set_defaults(func=_cmd_predict)

    export = sub.add_parser("export", help="write a prompt for PEFT, torch, numpy, T5X")
    export.add_argument("--checkpoint", help="a `jaxprompt train` output dir (its best prompt)")
    export.add_argument("--prompt", help="a prompt file in any readable format")
    export.add_argument("--format", required=True,
                        choices=["peft", "torch", "npy", "safetensors", "t5x"])
    export.add_argument("--out", required=True, help="output file or directory")
    export.add_argument("--base_model", help="recorded as PEFT's base_model_name_or_path")
    export.set_defaults(func=_cmd_export)

    inspect = sub.add_parser("inspect", help="describe a prompt file or a checkpoint")
    inspect.add_argument("path")
    inspect.add_argument("--model", help="with a prompt: show each position's nearest tokens")
    inspect.add_argument("--neighbours", type=int, default=5)
    inspect.add_argument("--vocabulary", help="SentencePiece model (default: bundled T5 vocab)")
    inspect.add_argument("--heatmap", help="PNG of position similarities (with --model)")
    inspect.set_defaults(func=_cmd_inspect)

    quick = sub.add_parser("quickstart", help="prompt-tune the embedded T5 on SST-2, offline")
    quick.add_argument("--output_dir", default="quickstart_sst2")
    quick.add_argument("--steps", type=int, default=None, help="training steps (default 1200)")
    quick.set_defaults(func=_cmd_quickstart)
    return parser


def _split_gin_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """Pulls t5x-style `--gin.KEY=VALUE` flags out of argv (as gin bindings)."""
    rest, bindings = [], []
    for arg in argv:
        if arg.startswith("--gin.") and "=" in arg:
            key, value = arg[len("--gin."):].split("=", 1)
            bindings.append(f"{key} = {value}")
        else:
            rest.append(arg)
    return rest, bindings


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # seqio's TensorFlow: no info spam.
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, bindings = _split_gin_flags(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from jaxprompt import __version__
        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 0
    args.gin_bindings = bindings
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from jaxprompt.checkpoints.errors import CheckpointError
    from jaxprompt.config import ConfigError
    from jaxprompt.deep_prompts import DeepPromptError
    from jaxprompt.partitioning import PartitioningError
    from jaxprompt.prompt_files import PromptFileError
    from jaxprompt.prompts import PromptError
    from jaxprompt.trainer import TrainingError
    known = (CliError, CheckpointError, ConfigError, DeepPromptError, PartitioningError,
             PromptError, PromptFileError, TrainingError)
    try:
        from jaxprompt.data.readers import DataError
        known += (DataError,)
    except ImportError:
        pass
    try:
        return args.func(args)
    except known as e:
        print(f"jaxprompt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        from jaxprompt.extras import missing_extra_message
        message = missing_extra_message(e, f"jaxprompt {args.command}")
        if message is None:
            raise
        print(f"jaxprompt {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
