"""Bank directories: the prompts of many tasks for one frozen model, read as BankEntries.

A bank directory holds prompt files named after their tasks (`sst2.npy`, ...) and/or
prompt directories (`rte/`: a PEFT export, a run's best/<step>/ copy, a run's output
directory); a prompt directory's jaxprompt.json gives its labels and placement, and the
optional bank.json ({"task": {"labels": [...]}}) gives or overrides labels. The arrays
a mixed-task batch is built from are `jaxprompt.evaluation.bank.PromptBank`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import numpy as np

from jaxprompt.prompts.artifact import INFO_FILE, PromptArtifact, read_prompt
from jaxprompt.prompts.files import detect_format

logger = logging.getLogger(__name__)
BANK_FILE = "bank.json"  # optional: {"task": {"labels": ["negative", "positive"]}, ...}


@dataclasses.dataclass(frozen=True)
class BankEntry:
    """One task of a bank directory: its prompt as read and the labels it is ranked on."""

    artifact: PromptArtifact
    labels: tuple[str, ...] | None  # bank.json's, else the prompt directory's own

    @property
    def prompt(self) -> np.ndarray:  # [P, H]
        return self.artifact.prompt

    @property
    def prompt_mode(self) -> str:
        return self.artifact.prompt_mode


def _is_prompt(path: str) -> bool:
    if os.path.isdir(path) and (
        os.path.exists(os.path.join(path, INFO_FILE))
        or os.path.exists(os.path.join(path, "model_info.json"))
    ):
        return True
    try:
        detect_format(path)
        return True
    except Exception:  # Not a prompt: skip READMEs and the like.
        return False


def read_bank_directory(directory: str) -> dict[str, BankEntry]:
    """{task: BankEntry} of a bank directory (see the module docstring)."""
    overrides = {}
    if os.path.exists(os.path.join(directory, BANK_FILE)):
        with open(os.path.join(directory, BANK_FILE)) as f:
            overrides = {
                task: spec["labels"] for task, spec in json.load(f).items() if "labels" in spec
            }
    entries = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name == BANK_FILE or not _is_prompt(path):
            continue
        task = os.path.splitext(name)[0] if os.path.isfile(path) else name
        artifact = read_prompt(path)
        if artifact.prompt is None:
            raise ValueError(f"{path}: a deep prompt alone cannot join a bank of input prompts.")
        own = tuple(artifact.info.labels) if artifact.info and artifact.info.labels else None
        labels = tuple(overrides[task]) if task in overrides else own
        if own and labels != own:
            logger.warning(
                "%s: bank.json's labels %s override the prompt's own %s.",
                task,
                list(labels),
                list(own),
            )
        entries[task] = BankEntry(artifact, labels)
    if not entries:
        raise ValueError(f"{directory}: no prompt files (name them after their tasks).")
    return entries


__all__ = ["BANK_FILE", "BankEntry", "read_bank_directory"]
