"""`jaxprompt predict`: predictions for your own inputs, one prompt or a prompt bank."""

from __future__ import annotations

import json

from jaxprompt.cli.common import CliError, add_model_flags, start_mesh, trainable_from_prompts
from jaxprompt.cli.prompt_args import (
    apply_prompt_settings,
    check_prompts,
    prompt_mode,
    read_prompts,
    recorded,
    warn,
)


def model_inputs(args, records, artifacts) -> list[str]:
    """Each row's model input: --input_template, else the prompt's task format (its
    template, or a built-in task's own format), else the row's "inputs" field."""
    from jaxprompt.data.user_files import recipe_formatter

    artifact = recorded(artifacts)
    task = (artifact.info.task if artifact else None) or {}
    own = recipe_formatter(task.get("name"), task.get("recipe")) if task else None
    if args.input_template is not None and own is not None:
        warn(
            f"--input_template {args.input_template!r} overrides the format of the prompt's "
            f"task {task.get('name')!r} ({artifact.info_path})."
        )
    if args.input_template is not None or own is None:
        template = args.input_template or "{inputs}"
        own = lambda row: [template.format(**row)]
    inputs = []
    for line, row in records:
        try:
            inputs += own(row)
        except KeyError as e:
            raise CliError(
                f"{args.input}, line {line}: missing field {e} for the input format "
                f"of {args.input_template or task.get('name') or '{inputs}'!r}; the "
                f"row has {sorted(row)}."
            ) from None
    return inputs


def run(args) -> int:
    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.training.run_lock import output_lock
    from jaxprompt.data.user_files import read_records
    from jaxprompt.prompts.bank_directory import read_bank_directory

    artifacts = read_prompts(args.prompt[:1] if args.prompt else [])
    apply_prompt_settings(args, artifacts)
    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(model_vocabulary(args.model, args.vocabulary))
    data.check_vocabulary(vocab, config)
    bank_entries = read_bank_directory(args.prompt_bank) if args.prompt_bank else {}
    check_prompts(args, artifacts + [e.artifact for e in bank_entries.values()], params, vocab)
    mesh, params, writes = start_mesh(args, config, params)
    # Held until this function returns: a second command writing the same file stops now.
    lock = output_lock(args.output, "jaxprompt predict") if writes else None  # noqa: F841
    records = read_records(args.input)
    if args.prompt_bank:
        if args.deep_prompt:
            raise CliError("--prompt_bank serves input prompts; --deep_prompt cannot join it.")
        from jaxprompt.evaluation.bank import bank_from_entries, predict_mixed

        missing = [line for line, row in records if "task" not in row]
        if missing:
            raise CliError(
                f"{args.input}, line {missing[0]}: no 'task' field; with "
                "--prompt_bank every line names its task."
            )
        inputs = model_inputs(args, records, [])
        bank = bank_from_entries(bank_entries, vocab, args.targets_length)
        predictions = predict_mixed(
            config,
            params,
            bank,
            vocab,
            [r["task"] for _, r in records],
            inputs,
            inputs_length=args.inputs_length,
            targets_length=args.targets_length,
            batch_size=args.batch_size,
            mesh=mesh,
            with_scores=True,
        )
    else:
        inputs = model_inputs(args, records, artifacts)
        trainable, _ = trainable_from_prompts(args, artifacts, config)  # one --prompt
        predictions = evaluation.predict(
            config,
            params,
            trainable,
            vocab,
            inputs,
            label_names=args.labels,
            method=args.method,
            batch_size=args.batch_size,
            lengths=data.Lengths(args.inputs_length, args.targets_length),
            prompt_mode=prompt_mode(artifacts),
            mesh=mesh,
            with_scores=True,
        )
    if not writes:  # another process of a pod slice: process 0 writes
        return 0
    with open(args.output, "w") as f:
        for text, (prediction, scores) in zip(inputs, predictions):
            row = {"inputs": text, "prediction": prediction}
            if scores is not None:  # rank classification: every candidate's log-likelihood
                row["log_likelihoods"] = scores
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(predictions)} predictions to {args.output}")
    return 0


def add_parser(sub) -> None:
    predict = sub.add_parser("predict", help="predictions for your own inputs")
    add_model_flags(predict)
    predict.add_argument("--input", required=True, help=".jsonl/.csv/.tsv of inputs")
    predict.add_argument("--output", required=True, help="predictions .jsonl")
    predict.add_argument(
        "--input_template",
        help="format of the model input from each row's fields (default: the "
        "prompt's task format, else '{inputs}')",
    )
    predict.add_argument(
        "--labels",
        help="comma-separated candidate targets for rank "
        "classification (default: the prompt's labels)",
    )
    predict.add_argument(
        "--prompt_bank",
        help="directory of <task>.npy prompts (+ bank.json labels); each input line names its task",
    )
    predict.set_defaults(func=run)
