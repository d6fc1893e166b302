"""Hugging Face Hub ids as model names: `org/name` or `org/name@revision`.

Resolved with huggingface_hub (its cache, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE and tokens,
as that library handles them), downloading only what a T5 needs: the config, the weights
(safetensors or its index and shards; `pytorch_model.bin` only when there are none) and the
tokenizer files. A local directory of the same name always wins.
"""

from __future__ import annotations

import functools
import os
import re

from jaxprompt.checkpoints.errors import CheckpointError

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(@(?P<revision>[\w./-]+))?$")
CONFIG_AND_TOKENIZER = [
    "config.json",
    "generation_config.json",
    "spiece.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
SAFETENSORS = ["*.safetensors", "*.safetensors.index.json"]
PYTORCH = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]


def is_hub_id(name: str) -> bool:
    """`org/name[@revision]` that is not a local path. No part of it may be "." or "..":
    huggingface_hub joins the revision under the cache's refs/ folder, so "@../../x" would
    read outside it."""
    return (
        not os.path.exists(name)
        and "://" not in name
        and not name.startswith((".", "/"))
        and HUB_ID.match(name) is not None
        and not {".", ".."} & set(name.replace("@", "/").split("/"))
    )


def split_id(name: str) -> tuple[str, str | None]:
    match = HUB_ID.match(name)
    return match.group("repo"), match.group("revision")


@functools.lru_cache(maxsize=None)
def resolve(name: str) -> str:
    """The local snapshot directory of Hub id `name` (downloaded unless cached). Once per
    process: loading, the vocabulary, the recorded id and the planner's shapes all ask."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise CheckpointError(
            f"{name} is a Hugging Face Hub id; pip install huggingface_hub "
            "to resolve it (or pass a local directory)."
        ) from None
    repo, revision = split_id(name)
    try:
        path = huggingface_hub.snapshot_download(
            repo, revision=revision, allow_patterns=CONFIG_AND_TOKENIZER + SAFETENSORS
        )
        if not any(f.endswith(".safetensors") for f in os.listdir(path)):
            path = huggingface_hub.snapshot_download(
                repo, revision=revision, allow_patterns=CONFIG_AND_TOKENIZER + PYTORCH
            )
    except (errors.LocalEntryNotFoundError, getattr(errors, "IncompleteSnapshotError", OSError)):
        raise CheckpointError(
            f"{name}: not in the local Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE})"
            " and the Hub cannot be reached; on a connected machine run `huggingface-cli "
            f"download {repo}{' --revision ' + revision if revision else ''}` and copy its "
            "cache (HF_HOME) here."
        ) from None
    except errors.RevisionNotFoundError:
        raise CheckpointError(
            f"{name}: the Hub repository {repo} has no revision {revision!r}."
        ) from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(
            f"{name}: no such Hugging Face Hub repository (or it is private:"
            " log in with `huggingface-cli login` or set HF_TOKEN)."
        ) from None
    except errors.HfHubHTTPError as e:
        raise CheckpointError(f"{name}: the Hub answered {str(e).splitlines()[0]}") from None
    return path


def pinned_id(name: str) -> str:
    """`org/name@<commit>` of the snapshot `name` resolves to (what a run records)."""
    repo, _ = split_id(name)
    commit = os.path.basename(os.path.normpath(resolve(name)))
    return f"{repo}@{commit}"


__all__ = ["is_hub_id", "pinned_id", "resolve", "split_id"]
