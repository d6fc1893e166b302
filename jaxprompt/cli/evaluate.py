"""`jaxprompt eval`: a prompt (or an ensemble, a hard prompt, k shots) on a task's split."""

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

    if args.data_dir:
        data.set_data_dir(args.data_dir)
    config, params = load_pretrained(args.model)
    mesh, params, writes = start_mesh(args, config, params)
    # Held until this function returns: a second command writing the same file stops now.
    lock = output_lock(args.output or "eval.json", "jaxprompt eval") if writes else None  # noqa
    vocab = data.vocabulary(args.vocabulary or data.DEFAULT_VOCABULARY)
    data.check_vocabulary(vocab, config.vocab_size)
    task = data.get_task(args.task)
    if args.hard_prompt or args.shots:
        from jaxprompt.prompts.hard import with_hard_prompt
        task = with_hard_prompt(task, args.hard_prompt or "", args.shots, args.seed)
    prompts = [load_prompt_arg(path, args) for path in args.prompt or []]
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
    trainable = make_trainable(prompt, load_deep_prompt_arg(args, config))
    result = evaluation.evaluate(config, params, trainable, task, vocab, split=args.split,
                                 method=args.method, batch_size=args.batch_size,
                                 lengths=data.Lengths(args.inputs_length, args.targets_length),
                                 max_examples=args.max_examples,
                                 ensemble=args.ensemble if len(prompts) > 1 else None,
                                 mesh=mesh)
    if not writes:  # another process of a pod slice: process 0 prints and writes
        return 0
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


def add_parser(sub) -> None:
    evaluate = sub.add_parser("eval", help="evaluate a prompt on a task, write eval.json")
    add_model_flags(evaluate)
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
    evaluate.set_defaults(func=run)
