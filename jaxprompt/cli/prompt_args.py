"""A prompt's own settings under the user's flags: what eval, predict and serve share.

A prompt directory records its model, task, labels, decoding, lengths and placement
(jaxprompt.prompts.artifact). A flag left out takes the prompt's value; a flag given
overrides it, with a warning naming both; the placement is always the prompt's own.
"""

from __future__ import annotations

import sys

from jaxprompt.cli.common import CliError

DEFAULT_LENGTHS = {"inputs": 512, "targets": 16}


def read_prompts(paths) -> list:
    """--prompt paths -> PromptArtifacts; an ensemble's prompts must share a placement."""
    from jaxprompt.prompts.artifact import read_prompt

    artifacts = [read_prompt(path) for path in paths or []]
    modes = {a.prompt_mode for a in artifacts}
    if len(modes) > 1:
        raise CliError(
            f"The prompts {[a.source for a in artifacts]} were trained with "
            f"different placements {sorted(modes)}; an ensemble needs one."
        )
    return artifacts


def recorded(artifacts):
    """The first prompt's PromptInfo that exists (None: bare prompt files only)."""
    return next((a for a in artifacts if a.info is not None), None)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def choose(given, own, default, flag: str, what: str, where: str | None):
    """The flag's value if given (warning when the prompt says otherwise), else the prompt's,
    else the default."""
    if given is None:
        return own if own is not None else default
    if own is not None and given != own:
        warn(f"{flag} {given!r} overrides the prompt's {what} {own!r} ({where}).")
    return given


def apply_prompt_settings(args, artifacts) -> None:
    """Fills args.model, args.method, args.inputs_length, args.targets_length (and
    args.labels / args.task where the command has them) from the prompt."""
    artifact = recorded(artifacts)
    info, where = (artifact.info, artifact.info_path) if artifact else (None, None)
    own = lambda name, default=None: getattr(info, name, default) if info else default
    # A --model other than the recorded path is no conflict (weights move): the
    # fingerprint check decides (check_prompts).
    args.model = args.model or (own("model") or {}).get("path")
    if args.model is None:
        raise CliError("--model is required (the prompt records no model).")
    lengths = own("lengths") or {}
    args.inputs_length = choose(
        args.inputs_length,
        lengths.get("inputs"),
        DEFAULT_LENGTHS["inputs"],
        "--inputs_length",
        "inputs length",
        where,
    )
    args.targets_length = choose(
        args.targets_length,
        lengths.get("targets"),
        DEFAULT_LENGTHS["targets"],
        "--targets_length",
        "targets length",
        where,
    )
    args.method = choose(args.method, own("decoding"), None, "--method", "decoding", where)
    if hasattr(args, "labels"):
        given = tuple(args.labels.split(",")) if args.labels else None
        labels = own("labels")
        args.labels = choose(
            given, tuple(labels) if labels else None, None, "--labels", "labels", where
        )
    if hasattr(args, "task") and args.task is None and info is not None and info.task:
        args.task = info.task["name"]


def prompt_mode(artifacts) -> str:
    """The placement of the prompts (read_prompts made sure they share one)."""
    return artifacts[0].prompt_mode if artifacts else "prefix"


def check_prompts(args, artifacts, params, vocab) -> None:
    """Refuses a recorded prompt used with another model or vocabulary (one line)."""
    if recorded(artifacts) is None:
        return
    from jaxprompt.checkpoints.fingerprints import content_fingerprint
    from jaxprompt.data.vocabulary import vocabulary_fingerprint
    from jaxprompt.prompts.artifact import check_use

    model_fingerprint = content_fingerprint(params)
    vocab_fingerprint = vocabulary_fingerprint(vocab)
    for artifact in artifacts:
        check_use(
            artifact,
            model_fingerprint=model_fingerprint,
            model=args.model,
            vocabulary_fingerprint=vocab_fingerprint,
            vocabulary=getattr(vocab, "path", "the vocabulary"),
            allow_other_model=args.allow_other_model,
            allow_other_vocabulary=args.allow_other_vocabulary,
        )
