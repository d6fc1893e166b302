"""What the command modules share: the user-facing error, prompt arguments, model flags."""

from __future__ import annotations

import argparse


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


def trainable_from_prompts(args, artifacts, config):
    """(trainable tree, ensemble mask) of the --prompt artifacts: one prompt [P, H], or
    [N, P_max, H] for an ensemble (prompts of different lengths left-padded, their mask
    [N, P_max]; else None), and the deep prompt (--deep_prompt, else the prompt directory's
    own), each refused as training would refuse it: width, and prompt + --inputs_length
    within the encoder's limit."""
    import jax.numpy as jnp

    from jaxprompt.evaluation.bank import stack_prompts
    from jaxprompt.prompts.files import check_width
    from jaxprompt.prompts.trainable import check_prompt_use, make_trainable

    prompts = [a.prompt for a in artifacts if a.prompt is not None]
    for artifact in artifacts:
        if artifact.prompt is not None:
            check_width(artifact.prompt, config.d_model, artifact.source)
            check_prompt_use(
                artifact.prompt.shape[0],
                args.inputs_length,
                source=artifact.source,
                config=config,
                targets_length=args.targets_length,
            )
    if len(artifacts) > 1:
        if not getattr(args, "ensemble", None):
            raise CliError("Several --prompt need --ensemble vote|mean.")
        if len(prompts) != len(artifacts):
            raise CliError(
                "Every ensembled --prompt needs an input prompt; got "
                f"{[None if a.prompt is None else a.prompt.shape for a in artifacts]}."
            )
        stacked, mask = stack_prompts(prompts)
        prompt = jnp.asarray(stacked)
    else:
        prompt, mask = (jnp.asarray(prompts[0]) if prompts else None), None
    deep = load_deep_prompt_arg(args, config)
    if deep is None and len(artifacts) == 1 and "deep_prompt" in artifacts[0].trainable:
        from jaxprompt.prompts.deep import check_deep_prompt

        deep = artifacts[0].trainable["deep_prompt"]
        check_deep_prompt(deep, config)
    return make_trainable(prompt, deep), mask


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
    from jaxprompt.models.family import family_of

    mesh = partitioning.make_mesh(int_list(args.mesh, "--mesh"))
    params = distributed.place(
        params,
        partitioning.tree_shardings(
            family_of(config).param_shapes(config), family_of(config).param_axes(config), mesh
        ),
    )
    return mesh, params, distributed.is_leader()


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--model, --prompt, --deep_prompt, --vocabulary, --method, batch and lengths, and the
    overrides of a prompt's own model and vocabulary."""
    add_prompt_use_flags(p)
    p.add_argument(
        "--model",
        help="'tiny', a Hub id (org/name[@revision]), a Hugging Face T5 "
        "directory or a T5X checkpoint (default: the model the "
        "prompt directory names)",
    )
    p.add_argument(
        "--prompt",
        action="append",
        help="prompt directory (best/<step>/, a run's output dir, an export) or "
        "file (any format); repeat with --ensemble; none: bare model",
    )
    p.add_argument("--deep_prompt", help="deep_prompt.npz of a deep-prompt run")
    p.add_argument(
        "--vocabulary",
        help="SentencePiece model (default: the model's own spiece.model, else T5's)",
    )
    p.add_argument(
        "--method",
        choices=["rank", "greedy"],
        help="rank classification or greedy decoding (default: the prompt's, else by task)",
    )
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument(
        "--inputs_length", type=int, help="input tokens (default: the prompt's, else 512)"
    )
    p.add_argument(
        "--targets_length", type=int, help="target tokens (default: the prompt's, else 16)"
    )
    p.add_argument(
        "--multihost",
        choices=["auto", "on", "off"],
        default="auto",
        help="jax.distributed on a pod slice: every host runs the command, each "
        "builds only its rows, process 0 writes the output",
    )
    p.add_argument(
        "--mesh",
        help="data,model mesh to split batches and the frozen model "
        "(default on a pod slice: all devices on data)",
    )


def add_prompt_use_flags(p) -> None:
    p.add_argument(
        "--allow_other_model",
        action="store_true",
        help="use a prompt with a model whose fingerprint differs from the one it "
        "was trained on (e.g. a re-saved copy of the same weights)",
    )
    p.add_argument(
        "--allow_other_vocabulary",
        action="store_true",
        help="use a prompt with a vocabulary other than the one it was trained with",
    )
