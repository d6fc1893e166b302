"""`jaxprompt quickstart`: prompt-tune the embedded T5 on SST-2, offline."""

from __future__ import annotations

import dataclasses


def run(args) -> int:
    from jaxprompt.experiments import quickstart

    config = quickstart.QuickstartConfig(output_dir=args.output_dir, dtype=args.dtype)
    if args.steps:
        config = dataclasses.replace(config, steps=args.steps)
    quickstart.run(config)
    return 0


def add_parser(sub) -> None:
    quick = sub.add_parser("quickstart", help="prompt-tune the embedded T5 on SST-2, offline")
    quick.add_argument("--output_dir", default="quickstart_sst2")
    quick.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the quickstart's)"
    )
    quick.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="compute and frozen-weight dtype (auto: JAXPROMPT_DTYPE if set, "
        "else bfloat16 on a CPU with AMX, float32 elsewhere)",
    )
    quick.set_defaults(func=run)
