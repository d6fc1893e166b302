"""`jaxprompt inspect`: describe a prompt file or a checkpoint; a prompt's nearest tokens."""

from __future__ import annotations

import os


def shown(text: str, limit: int = 300) -> str:
    """A recorded string as printable text: control characters (terminal escape sequences
    in a shared prompt directory) escaped, at most `limit` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _describe_prompt(artifact) -> None:
    import numpy as np

    from jaxprompt.prompts.files import PromptFileError, detect_format

    path, prompt = artifact.source, artifact.prompt
    try:
        kind = f"{detect_format(path)} prompt"
    except PromptFileError:  # a run's output directory: its best (or latest) prompt
        kind = f"prompt of a training run ({os.path.dirname(artifact.info_path)})"
    if prompt is not None:
        norms = np.linalg.norm(prompt, axis=1)
        print(
            f"{path}: {kind}, shape {prompt.shape} (P, H), float32 as read; "
            f"finite: {bool(np.isfinite(prompt).all())}"
        )
        print(
            f"  row L2 norm: mean {norms.mean():.4g}, min {norms.min():.4g}, max {norms.max():.4g}"
        )
        print("  per position: " + " ".join(f"{n:.3g}" for n in norms))
    else:
        print(f"{path}: {kind} without an input prompt")
    if "deep_prompt" in artifact.trainable:
        shapes = {k: tuple(v.shape) for k, v in artifact.trainable["deep_prompt"].items()}
        print(f"  deep prompt: {shapes}")
    if artifact.info is not None:
        print(f"  recorded in {artifact.info_path}:")
        for field, value in artifact.info.describe():
            print(f"  {field:<12} {shown(value)}")
    missing = artifact.missing()
    if missing:
        print(
            f"  not recorded: {', '.join(missing)}"
            + ("" if artifact.info else " (a bare prompt file: pass them as flags)")
        )


def _describe_model(path: str) -> None:
    import jax
    import numpy as np

    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.models.family import family_of

    config, params = load_pretrained(path)
    leaves = jax.tree.leaves(params)
    count = sum(int(np.prod(x.shape)) for x in leaves)
    dtypes = sorted({str(x.dtype) for x in leaves})
    kind = "T5" if family_of(config).name == "t5" else f"decoder-only ({config.model_type})"
    print(f"{path}: {kind} checkpoint, {count:,} parameters ({', '.join(dtypes)}, as loaded)")
    for key, value in config.architecture().items():
        print(f"  {key:<32} {value}")


def run(args) -> int:
    from jaxprompt.checkpoints.gguf_file import NAMED_MODELS, find_gguf
    from jaxprompt.checkpoints.hub import is_hub_id
    from jaxprompt.checkpoints.t5x import is_t5x_checkpoint
    from jaxprompt.prompts.artifact import read_prompt
    from jaxprompt.prompts.files import PromptFileError

    path = args.path
    if (
        is_hub_id(path)
        or path in NAMED_MODELS
        or find_gguf(path)
        or (os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")))
    ):
        _describe_model(path)
        return 0
    try:
        artifact = read_prompt(path)  # Read once: described, then (with --model) interpreted.
    except PromptFileError:
        if not is_t5x_checkpoint(path):
            raise
        _describe_model(path)  # A T5X checkpoint of a whole model, not a prompt.
        return 0
    _describe_prompt(artifact)
    if args.model and artifact.prompt is not None:
        _neighbours(args, path, artifact.prompt)
    return 0


def _neighbours(args, path: str, prompt) -> None:
    from jaxprompt import data
    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.prompts.interpretation import nearest_tokens, plot_similarity
    from jaxprompt.prompts.files import check_width

    config, params = load_pretrained(args.model)
    vocab = data.vocabulary(model_vocabulary(args.model, args.vocabulary))
    check_width(prompt, config.d_model, path)
    ids, scores = nearest_tokens(
        prompt, params["token_embedder"]["embedding"], args.neighbours, vocab_size=vocab.vocab_size
    )
    print(f"  nearest tokens by cosine similarity to {args.model}'s embedding:")
    for position, (row_ids, row_scores) in enumerate(zip(ids, scores)):
        words = ", ".join(
            f"{vocab.decode([int(i)]) or _piece(vocab, int(i))} ({s:.2f})"
            for i, s in zip(row_ids, row_scores)
        )
        print(f"  {position:4d}: {words}")
    heatmap = (
        args.heatmap or os.path.splitext(os.path.basename(path.rstrip("/")))[0] + "_similarity.png"
    )
    print(f"  position similarity heatmap: {plot_similarity(prompt, heatmap)}")


def _piece(vocab, token: int) -> str:
    """A token that decodes to nothing (a sentinel, a special): its piece, or its id."""
    tokenizer = getattr(vocab, "tokenizer", None)
    return repr(tokenizer.id_to_piece(token)) if tokenizer is not None else f"<id {token}>"


def add_parser(sub) -> None:
    inspect = sub.add_parser(
        "inspect", help="describe a prompt (directory or file) or a checkpoint"
    )
    inspect.add_argument("path")
    inspect.add_argument("--model", help="with a prompt: show each position's nearest tokens")
    inspect.add_argument("--neighbours", type=int, default=5)
    inspect.add_argument(
        "--vocabulary",
        help="vocabulary: a SentencePiece model or tokenizer.json (default: the model's own; "
        "a GGUF's from its metadata; else T5's)",
    )
    inspect.add_argument("--heatmap", help="PNG of position similarities (with --model)")
    inspect.set_defaults(func=run)
