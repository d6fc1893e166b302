"""`jaxprompt quickstart`: prompt-tune the embedded T5 on SST-2, offline."""

from __future__ import annotations

import dataclasses


def run(args) -> int:
    from jaxprompt.experiments import quickstart
    config = quickstart.QuickstartConfig(output_dir=args.output_dir)
    if args.steps:
        config = dataclasses.replace(config, steps=args.steps)
    quickstart.run(config)
    return 0


def add_parser(sub) -> None:
    quick = sub.add_parser("quickstart", help="prompt-tune the embedded T5 on SST-2, offline")
    quick.add_argument("--output_dir", default="quickstart_sst2")
    quick.add_argument("--steps", type=int, default=None, help="training steps (default: the "
                       "quickstart's)")
    quick.set_defaults(func=run)
