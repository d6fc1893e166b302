"""`jaxprompt export`: a prompt for PEFT, torch, numpy, safetensors or T5X."""

from __future__ import annotations

import json
import os

from jaxprompt.cli.common import CliError
from jaxprompt.models.family import config_from_architecture


def run(args) -> int:
    from jaxprompt.prompts.artifact import read_prompt, run_prompt_directory, write_info
    from jaxprompt.prompts.export import export_prompt

    if bool(args.checkpoint) == bool(args.prompt):
        raise CliError("Give exactly one of --checkpoint (a training output dir) or --prompt.")
    if args.checkpoint and (
        not os.path.isdir(args.checkpoint) or run_prompt_directory(args.checkpoint) is None
    ):
        raise CliError(
            f"{args.checkpoint}: no checkpoint (expected best/<step>/ or "
            "checkpoints/<step>/ as written by jaxprompt train)."
        )
    artifact = read_prompt(args.checkpoint or args.prompt)
    if artifact.prompt is None:
        raise CliError(
            f"{artifact.source} holds no input prompt: a deep prompt alone cannot "
            "be exported (PEFT's PREFIX_TUNING reaches only T5's decoder; see the "
            "README). Use its deep_prompt.npz with jaxprompt eval/predict "
            "--deep_prompt."
        )
    info = artifact.info
    if args.format == "peft" and artifact.prompt_mode != "prefix":
        raise CliError(
            f"{artifact.source} was trained with placement {artifact.prompt_mode!r}; "
            "PEFT always puts the prompt before the first token and would give "
            "other outputs. Export --format npy/safetensors/torch/t5x instead."
        )
    architecture = info.model.get("architecture") if info else None
    if architecture is None and args.checkpoint:
        with open(os.path.join(args.checkpoint, "model_info.json")) as f:
            architecture = json.load(f)["architecture"]
    config = config_from_architecture(architecture) if architecture else None
    base_model = args.base_model or (info.model.get("path") if info else None)
    path = export_prompt(
        artifact.prompt, args.format, args.out, config=config, base_model=base_model
    )
    carried = ""
    if info is not None and args.format in ("peft", "t5x"):
        write_info(path, info)
        carried = " with its jaxprompt.json"
    elif info is not None:
        carried = " (the array only: --format peft or t5x carries jaxprompt.json)"
    print(f"exported {artifact.source} {artifact.prompt.shape} as {args.format} to {path}{carried}")
    return 0


def add_parser(sub) -> None:
    export = sub.add_parser("export", help="write a prompt for PEFT, torch, numpy, T5X")
    export.add_argument("--checkpoint", help="a `jaxprompt train` output dir (its best prompt)")
    export.add_argument("--prompt", help="a prompt file in any readable format")
    export.add_argument(
        "--format", required=True, choices=["peft", "torch", "npy", "safetensors", "t5x"]
    )
    export.add_argument("--out", required=True, help="output file or directory")
    export.add_argument("--base_model", help="recorded as PEFT's base_model_name_or_path")
    export.set_defaults(func=run)
