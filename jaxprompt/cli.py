"""The `jaxprompt` command line. Gin is bound here, at the edge, and nowhere else."""

from __future__ import annotations

import argparse
import sys

import gin

from jaxprompt.config import T5Config

_REGISTERED = False


def register_gin_configurables() -> None:
    """Makes jaxprompt's configuration classes bindable from .gin files (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    gin.external_configurable(T5Config, "T5Config")
    _REGISTERED = True


def parse_gin(files: list[str], bindings: list[str]) -> None:
    """Parses gin files and KEY=VALUE bindings (unknown names raise, naming the binding)."""
    register_gin_configurables()
    gin.parse_config_files_and_bindings(files, bindings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxprompt", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from jaxprompt import __version__
        print(__version__)
        return 0
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
