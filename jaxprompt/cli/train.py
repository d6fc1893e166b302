"""`jaxprompt train`: gin is bound here (jaxprompt.cli.configure), at the edge, and nowhere else.

  jaxprompt train --gin_file=runs/prompt_tuning.gin \\
      --gin.train.model="'google/t5-base-lm-adapt'" --gin.train.task="'super_glue_rte'" \\
      --download --output_dir=/tmp/rte
"""

from __future__ import annotations

import os


def run(args) -> int:
    from jaxprompt.cli.configure import configured_run
    from jaxprompt.distributed import maybe_initialize
    from jaxprompt.experiments.runs import prompt_tune
    from jaxprompt.prompts.trainable import DEEP_PROMPT_FILE, PROMPT_FILE

    maybe_initialize({"auto": None, "on": True, "off": False}[args.multihost])
    bindings = list(args.gin_bindings)
    if args.output_dir:
        bindings.append(f"train.output_dir = {args.output_dir!r}")
    if args.download:
        bindings.append("train.download = True")
    configured = configured_run(args.gin_file, bindings)
    result = prompt_tune(configured)
    output_dir = configured.settings.output_dir
    step_dir = os.path.join(output_dir, "checkpoints", str(result.step))
    print(
        f"Trained {result.step} steps. Best {result.eval_metric}: {result.best_metric} at "
        f"step {result.best_step}."
    )
    if configured.settings.prompt_length:
        best = os.path.dirname(result.best_prompt_path or os.path.join(step_dir, PROMPT_FILE))
        print(
            f"Prompt: {best}/ (prompt.npy, jaxprompt.json: model, task, labels, placement)\n"
            f"Use it: jaxprompt eval --prompt {output_dir}  |  jaxprompt predict --prompt "
            f"{output_dir} --input FILE --output predictions.jsonl\n"
            f"Export it for PyTorch/PEFT: jaxprompt export --prompt {best} --format peft "
            f"--out {os.path.join(output_dir, 'peft_prompt')}"
        )
    if configured.settings.deep_prompt_length:
        best = result.best_deep_prompt_path or os.path.join(step_dir, DEEP_PROMPT_FILE)
        print(
            f"Deep prompt: {best} (use it with jaxprompt eval/predict --deep_prompt; PEFT "
            "cannot hold T5 encoder prefixes, see the README)"
        )
    return 0


def add_gin_flags(p) -> None:
    p.add_argument(
        "--gin_file",
        action="append",
        default=[],
        help="gin file (path, or relative to the shipped gin_configs/); repeatable",
    )
    p.set_defaults(gin_bindings=[])


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="prompt-tune a frozen T5 (gin-configured)")
    add_gin_flags(train)
    train.add_argument("--output_dir", help="checkpoints and logs; resumes if it holds a run")
    train.add_argument(
        "--download",
        action="store_true",
        help="download a built-in task found nowhere locally (train.download)",
    )
    train.add_argument(
        "--multihost",
        choices=["auto", "on", "off"],
        default="auto",
        help="call jax.distributed.initialize() (auto: on multi-host TPU slices)",
    )
    train.set_defaults(func=run)
