"""What the command modules share: the user-facing error, prompt arguments, model flags."""

from __future__ import annotations

import argparse


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


def load_prompt_arg(path: str, args=None):
    """A --prompt file, refused as training would refuse it (with `args`: its length plus
    --inputs_length is checked against the encoder's limit)."""
    from jaxprompt.prompts.files import load_prompt
    prompt = load_prompt(path)
    if args is not None:
        from jaxprompt.prompts.trainable import check_prompt_use
        check_prompt_use(prompt.shape[0], args.inputs_length, source=path)
    return prompt


def load_deep_prompt_arg(args, config):
    """--deep_prompt FILE.npz, checked against the model; None without the flag."""
    if not args.deep_prompt:
        return None
    if len(args.prompt or []) > 1:
        raise CliError("--deep_prompt cannot be combined with an ensemble of --prompt.")
    from jaxprompt.prompts.deep import load_deep_prompt
    return load_deep_prompt(args.deep_prompt, config)


def int_list(text: str | None, flag: str) -> tuple[int, ...] | None:
    """'1,8' -> (1, 8) in the given order; None for an absent flag."""
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise CliError(f"{flag} {text!r}: a comma-separated list of integers.") from None


def start_mesh(args, config, params):
    """--multihost / --mesh: (mesh or None, params placed on it, whether this host writes)."""
    from jaxprompt import distributed
    distributed.maybe_initialize({"auto": None, "on": True, "off": False}[args.multihost])
    import jax
    if not args.mesh and jax.process_count() == 1:
        return None, params, True
    from jaxprompt import partitioning
    from jaxprompt.models.t5 import logical_axes, param_shapes
    mesh = partitioning.make_mesh(int_list(args.mesh, "--mesh"))
    params = distributed.place(params, partitioning.tree_shardings(
        param_shapes(config), logical_axes(config), mesh))
    return mesh, params, distributed.is_leader()


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
    p.add_argument("--multihost", choices=["auto", "on", "off"], default="auto",
                   help="jax.distributed on a pod slice: every host runs the command, each "
                        "builds only its rows, process 0 writes the output")
    p.add_argument("--mesh", help="data,model mesh to split batches and the frozen model "
                                  "(default on a pod slice: all devices on data)")
