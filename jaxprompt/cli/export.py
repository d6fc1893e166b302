"""`jaxprompt export`: a prompt for PEFT, torch, numpy, safetensors or T5X."""

from __future__ import annotations

import json
import os

from jaxprompt.cli.common import CliError
from jaxprompt.config import T5Config


def run(args) -> int:
    from jaxprompt.prompts.export import export_prompt
    from jaxprompt.prompts.files import load_prompt

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


def add_parser(sub) -> None:
    export = sub.add_parser("export", help="write a prompt for PEFT, torch, numpy, T5X")
    export.add_argument("--checkpoint", help="a `jaxprompt train` output dir (its best prompt)")
    export.add_argument("--prompt", help="a prompt file in any readable format")
    export.add_argument("--format", required=True,
                        choices=["peft", "torch", "npy", "safetensors", "t5x"])
    export.add_argument("--out", required=True, help="output file or directory")
    export.add_argument("--base_model", help="recorded as PEFT's base_model_name_or_path")
    export.set_defaults(func=run)
