"""What the command modules share: the user-facing error, prompt arguments, model flags."""

from __future__ import annotations

import argparse


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


def load_prompt_arg(path: str):
    from jaxprompt.prompts.files import load_prompt
    return load_prompt(path)


def load_deep_prompt_arg(args, config):
    """--deep_prompt FILE.npz, checked against the model; None without the flag."""
    if not args.deep_prompt:
        return None
    if len(args.prompt or []) > 1:
        raise CliError("--deep_prompt cannot be combined with an ensemble of --prompt.")
    from jaxprompt.prompts.deep import load_deep_prompt
    return load_deep_prompt(args.deep_prompt, config)


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--model, --prompt, --deep_prompt, --vocabulary, --method, batch and lengths."""
    p.add_argument("--model", required=True, help="Hugging Face T5 directory")
    p.add_argument("--prompt", action="append",
                   help="prompt file (any format); repeat with --ensemble; none: bare model")
    p.add_argument("--deep_prompt", help="deep_prompt.npz of a deep-prompt run")
    p.add_argument("--vocabulary", help="SentencePiece model (default: bundled T5 vocab)")
    p.add_argument("--method", choices=["rank", "greedy"],
                   help="rank classification or greedy decoding (default by task)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--inputs_length", type=int, default=512)
    p.add_argument("--targets_length", type=int, default=16)
