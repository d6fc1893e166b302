"""`jaxprompt predict`: predictions for your own inputs, one prompt or a prompt bank."""

from __future__ import annotations

import json

from jaxprompt.cli.common import (CliError, add_model_flags, load_deep_prompt_arg,
                                  load_prompt_arg, start_mesh)


def run(args) -> int:
    import jax.numpy as jnp

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.training.run_lock import output_lock
    from jaxprompt.prompts.trainable import make_trainable
    from jaxprompt.data.user_files import read_records

    config, params = load_pretrained(args.model)
    mesh, params, writes = start_mesh(args, config, params)
    # Held until this function returns: a second command writing the same file stops now.
    lock = output_lock(args.output, "jaxprompt predict") if writes else None  # noqa: F841
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
        from jaxprompt.prompts.bank import load_bank, predict_mixed
        missing = [line for line, row in records if "task" not in row]
        if missing:
            raise CliError(f"{args.input}, line {missing[0]}: no 'task' field; with "
                           "--prompt_bank every line names its task.")
        bank = load_bank(args.prompt_bank)
        predictions = predict_mixed(config, params, bank, vocab, [r["task"] for _, r in records],
                                    inputs, inputs_length=args.inputs_length,
                                    targets_length=args.targets_length,
                                    batch_size=args.batch_size, mesh=mesh)
    else:
        prompt = jnp.asarray(load_prompt_arg(args.prompt[0], args)) if args.prompt else None
        trainable = make_trainable(prompt, load_deep_prompt_arg(args, config))
        labels = tuple(args.labels.split(",")) if args.labels else None
        predictions = evaluation.predict(
            config, params, trainable, vocab, inputs, label_names=labels, method=args.method,
            batch_size=args.batch_size,
            lengths=data.Lengths(args.inputs_length, args.targets_length), mesh=mesh)
    if not writes:  # another process of a pod slice: process 0 writes
        return 0
    with open(args.output, "w") as f:
        for text, prediction in zip(inputs, predictions):
            f.write(json.dumps({"inputs": text, "prediction": prediction}) + "\n")
    print(f"wrote {len(predictions)} predictions to {args.output}")
    return 0


def add_parser(sub) -> None:
    predict = sub.add_parser("predict", help="predictions for your own inputs")
    add_model_flags(predict)
    predict.add_argument("--input", required=True, help=".jsonl/.csv/.tsv of inputs")
    predict.add_argument("--output", required=True, help="predictions .jsonl")
    predict.add_argument("--input_template", default="{inputs}",
                         help="format of the model input from each row's fields")
    predict.add_argument("--labels", help="comma-separated candidate targets (rank)")
    predict.add_argument("--prompt_bank", help="directory of <task>.npy prompts (+ bank.json "
                                               "labels); each input line names its task")
    predict.set_defaults(func=run)
