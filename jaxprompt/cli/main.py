"""The `jaxprompt` command line: one module per command under jaxprompt/cli/.

  jaxprompt train --gin_file=runs/prompt_tuning.gin --gin.train.model="'/path/t5'" \\
      --gin.train.task="'super_glue_rte'" --output_dir=/tmp/rte
  jaxprompt plan --gin_file=runs/paper_xxl_v5e_8.gin --gin.train.model="'t5_1_1_lm100k_xxl'" \\
      --gin.train.task="'super_glue_rte'" --topology v5e-8
  jaxprompt eval --model /path/t5 --prompt /tmp/rte/best/3000/prompt.npy --task super_glue_rte
  jaxprompt predict --model /path/t5 --prompt p.npy --input in.jsonl --output preds.jsonl
  jaxprompt serve --model /path/t5 --prompt_bank bank/ --port 8000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from jaxprompt.cli import evaluate, export, inspect, plan, predict, quickstart, serve, train
from jaxprompt.cli.common import CliError

COMMANDS = (train, plan, evaluate, predict, serve, export, inspect, quickstart)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxprompt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _split_gin_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """Pulls t5x-style `--gin.KEY=VALUE` flags out of argv (as gin bindings)."""
    rest, bindings = [], []
    for arg in argv:
        if arg.startswith("--gin.") and "=" in arg:
            key, value = arg[len("--gin.") :].split("=", 1)
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
    from jaxprompt.models.deep_prompt_spec import DeepPromptError
    from jaxprompt.partitioning import PartitioningError
    from jaxprompt.planning.topology import TopologyError
    from jaxprompt.prompts.files import PromptFileError
    from jaxprompt.prompts.init import PromptError
    from jaxprompt.training.loop import TrainingError

    known = (
        CliError,
        CheckpointError,
        ConfigError,
        DeepPromptError,
        PartitioningError,
        PromptError,
        PromptFileError,
        TopologyError,
        TrainingError,
    )
    try:
        from jaxprompt.data.readers import DataError

        known += (DataError,)
    except ImportError:
        pass
    from jaxprompt.training.interrupts import TrainingInterrupted
    from jaxprompt.training.run_lock import DirectoryInUse

    known += (DirectoryInUse,)
    try:
        return args.func(args)
    except TrainingInterrupted as e:
        print(f"jaxprompt {args.command}: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"\njaxprompt {args.command}: interrupted.", file=sys.stderr)
        return 130
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
