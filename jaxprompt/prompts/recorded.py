"""What a prompt directory records, read as data from a stranger: its labels and its model
path are checked before any model work (jaxprompt.prompts.artifact reads them)."""

from __future__ import annotations

import collections
import os

from jaxprompt.prompts.files import PromptFileError

MAX_LABELS = 1024  # rank classification's candidates per prompt directory


def check_labels(labels, path: str) -> None:
    """None (greedy decoding), or distinct non-empty strings, at most MAX_LABELS of them:
    repeated labels would make every prediction the first, and 100,000 of them a 1.88 TB
    allocation."""
    if labels is None:
        return
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise PromptFileError(f"{path}: labels must be a non-empty list of strings.")
    counts = collections.Counter(labels)
    if len(counts) != len(labels):
        repeated = sorted(x for x, n in counts.items() if n > 1)[:3]
        raise PromptFileError(f"{path}: labels repeat {repeated}; each label once.")
    if len(labels) > MAX_LABELS:
        raise PromptFileError(
            f"{path}: {len(labels)} labels; a prompt directory holds at most {MAX_LABELS} "
            "(rank classification scores every one for every input)."
        )


def model_path_beside(model_path: str | None, info_path: str) -> str | None:
    """A relative model path that names something beside the prompt directory, resolved
    there (a directory shared with its model); anything else as recorded (absolute paths,
    "tiny", named models, Hub ids)."""
    if not model_path or os.path.isabs(model_path) or "://" in model_path:
        return model_path
    base = info_path if os.path.isdir(info_path) else os.path.dirname(info_path)
    candidate = os.path.normpath(os.path.join(base, model_path))
    return candidate if os.path.exists(candidate) else model_path
