"""`jaxprompt eval`: a prompt (or an ensemble, a hard prompt, k shots) on a task's split."""

from __future__ import annotations

import json

from jaxprompt.cli.common import CliError, add_model_flags, start_mesh, trainable_from_prompts
from jaxprompt.cli.prompt_args import (
    apply_prompt_settings,
    check_prompts,
    prompt_mode,
    read_prompts,
    recorded,
)


def prompt_task(name: str, artifacts):
    """The task `name`: the prompt's own (built again from its recipe) when it names it,
    else a registered (built-in) task."""
    from jaxprompt import data
    from jaxprompt.data.user_files import task_from_recipe

    artifact = recorded(artifacts)
    own = artifact.info.task if artifact else None
    if own and own.get("name") == name:
        return task_from_recipe(name, own.get("recipe"))
    return data.get_task(name)


def run(args) -> int:
    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.training.run_lock import output_lock

    artifacts = read_prompts(args.prompt)
    apply_prompt_settings(args, artifacts)
    if args.task is None:
        raise CliError("--task is required (the prompt records no task).")
    if args.data_dir or args.download:
        data.set_data_dir(args.data_dir, download=args.download)
    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(model_vocabulary(args.model, args.vocabulary))
    data.check_vocabulary(vocab, config)
    check_prompts(args, artifacts, params, vocab)
    mesh, params, writes = start_mesh(args, config, params)
    # Held until this function returns: a second command writing the same file stops now.
    lock = output_lock(args.output or "eval.json", "jaxprompt eval") if writes else None  # noqa
    task = prompt_task(args.task, artifacts)
    if args.hard_prompt or args.shots:
        from jaxprompt.prompts.hard import with_hard_prompt

        task = with_hard_prompt(task, args.hard_prompt or "", args.shots, args.seed)
    trainable, ensemble_mask = trainable_from_prompts(args, artifacts, config)
    result = evaluation.evaluate(
        config,
        params,
        trainable,
        task,
        vocab,
        split=args.split,
        method=args.method,
        batch_size=args.batch_size,
        lengths=data.Lengths(args.inputs_length, args.targets_length),
        max_examples=args.max_examples,
        ensemble=args.ensemble if len(artifacts) > 1 else None,
        ensemble_mask=ensemble_mask,
        prompt_mode=prompt_mode(artifacts),
        mesh=mesh,
    )
    if not writes:  # another process of a pod slice: process 0 prints and writes
        return 0
    print(
        f"{task.name} ({args.split}, {len(result.examples)} examples, {result.method}"
        f"{', ensemble of %d (%s)' % (len(artifacts), args.ensemble) if len(artifacts) > 1 else ''}):"
    )
    for name, value in result.metrics.items():
        print(f"  {name:<14} {value:8.2f}")
    out = args.output or "eval.json"
    with open(out, "w") as f:
        json.dump(
            {
                "task": task.name,
                "split": args.split,
                "method": result.method,
                "examples": len(result.examples),
                "metrics": result.metrics,
                "model": args.model,
                "prompts": args.prompt,
                "prompt_mode": prompt_mode(artifacts),
                "ensemble": args.ensemble,
                "deep_prompt": args.deep_prompt,
                "hard_prompt": args.hard_prompt,
                "shots": args.shots,
            },
            f,
            indent=2,
        )
    print(f"wrote {out}")
    return 0


def add_parser(sub) -> None:
    evaluate = sub.add_parser("eval", help="evaluate a prompt on a task, write eval.json")
    add_model_flags(evaluate)
    evaluate.add_argument(
        "--task", help="task name, e.g. super_glue_rte (default: the prompt directory's task)"
    )
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--data_dir", help="folder with the original task files")
    evaluate.add_argument(
        "--download",
        action="store_true",
        help="download a built-in task found nowhere locally (Hugging Face datasets, else TFDS)",
    )
    evaluate.add_argument("--max_examples", type=int)
    evaluate.add_argument("--output", help="metrics JSON (default eval.json)")
    evaluate.add_argument(
        "--ensemble",
        choices=["vote", "mean"],
        help="combine several --prompt: majority vote or mean log-likelihood",
    )
    evaluate.add_argument("--hard_prompt", help="text put before every input (no training)")
    evaluate.add_argument(
        "--shots", type=int, default=0, help="k training examples as demonstrations in every input"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="which demonstrations")
    evaluate.set_defaults(func=run)
