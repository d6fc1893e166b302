"""Mixed-task batches: one frozen model, a bank of task prompts, one batch of many tasks.

Prompts of different lengths are padded on the **left** to P_max and masked: the masked
slots are invisible to attention, and the relative distance between every real prompt row
and every token stays what it is without padding, so a mixed batch gives each example
what a single-task batch gives it. Each prompt keeps its own placement (`prompt_mode`):
a batch passes its rows' placements to the model as [B] flags.

A bank directory holds prompt files named after their tasks (`sst2.npy`, ...) and/or
prompt directories (`rte/`: a PEFT export, a run's best/<step>/ copy, a run's output
directory); a prompt directory's jaxprompt.json gives its labels and placement, and the
optional bank.json ({"task": {"labels": [...]}}) gives or overrides labels.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.evaluation import decode_tokens, encode_batch, greedy_decode, score_candidates
from jaxprompt.prompts.artifact import PromptArtifact, read_prompt
from jaxprompt.prompts.files import detect_format

logger = logging.getLogger(__name__)
BANK_FILE = "bank.json"  # optional: {"task": {"labels": ["negative", "positive"]}, ...}


@dataclasses.dataclass(frozen=True)
class PromptBank:
    names: tuple[str, ...]
    prompts: np.ndarray  # [num_tasks, P_max, H], left-padded with zeros
    mask: np.ndarray  # [num_tasks, P_max] bool
    labels: dict[str, tuple[str, ...]]  # rank-classification candidates per task (if any)
    after_bos: np.ndarray  # [num_tasks] bool: placement prefix_after_bos

    def index(self, task: str) -> int:
        if task not in self.names:
            raise KeyError(f"Task {task!r} has no prompt in the bank ({', '.join(self.names)}).")
        return self.names.index(task)

    def gather(self, tasks: Sequence[str]) -> tuple[jax.Array, jax.Array]:
        """Per-example prompts [B, P_max, H] and masks [B, P_max] for a batch's tasks."""
        rows = np.asarray([self.index(t) for t in tasks])
        return jnp.asarray(self.prompts[rows]), jnp.asarray(self.mask[rows])


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


def make_bank(prompts: dict[str, np.ndarray],
              labels: dict[str, Sequence[str]] | None = None,
              prompt_modes: dict[str, str] | None = None) -> PromptBank:
    """A bank of prompts {task: [P, H]} with optional labels and placements per task."""
    names = tuple(sorted(prompts))
    widths = {np.shape(p)[1] for p in prompts.values()}
    if len(widths) != 1:
        raise ValueError(f"Prompts of one bank must share d_model; found widths {sorted(widths)}.")
    longest = max(np.shape(p)[0] for p in prompts.values())
    bank = np.zeros((len(names), longest, widths.pop()), np.float32)
    mask = np.zeros((len(names), longest), bool)
    for row, name in enumerate(names):
        prompt = np.asarray(prompts[name], np.float32)
        bank[row, longest - len(prompt):] = prompt
        mask[row, longest - len(prompt):] = True
    modes = prompt_modes or {}
    after_bos = np.asarray([modes.get(n, "prefix") == "prefix_after_bos" for n in names])
    return PromptBank(names, bank, mask, {k: tuple(v) for k, v in (labels or {}).items()},
                      after_bos)


def _is_prompt(path: str) -> bool:
    from jaxprompt.prompts.artifact import INFO_FILE
    if os.path.isdir(path) and (os.path.exists(os.path.join(path, INFO_FILE))
                                or os.path.exists(os.path.join(path, "model_info.json"))):
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
            overrides = {task: spec["labels"] for task, spec in json.load(f).items()
                         if "labels" in spec}
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
            logger.warning("%s: bank.json's labels %s override the prompt's own %s.", task,
                           list(labels), list(own))
        entries[task] = BankEntry(artifact, labels)
    if not entries:
        raise ValueError(f"{directory}: no prompt files (name them after their tasks).")
    return entries


def load_bank(directory: str) -> PromptBank:
    """A bank directory's prompts, labels and placements as one PromptBank."""
    return bank_from_entries(read_bank_directory(directory))


def bank_from_entries(entries: dict[str, BankEntry]) -> PromptBank:
    """`read_bank_directory`'s entries as one PromptBank."""
    return make_bank({t: e.prompt for t, e in entries.items()},
                     {t: e.labels for t, e in entries.items() if e.labels},
                     {t: e.prompt_mode for t, e in entries.items()})


def predict_mixed(config: T5Config, params: dict, bank: PromptBank, vocab,
                  tasks: Sequence[str], inputs: Sequence[str], *, inputs_length: int = 512,
                  targets_length: int = 16, batch_size: int = 32, mesh=None) -> list[str]:
    """Predictions for a stream of (task, input) pairs, batches mixing tasks freely.

    Rank classification scores the union of all tasks' labels and keeps each example's
    own; tasks without labels in the bank are decoded greedily. `mesh`: as in
    `jaxprompt.evaluation.predict` (multi-host: each host builds only its rows).
    """
    from jaxprompt.evaluation.placement import default_placement
    placement = default_placement(mesh)
    placement.check_batch(batch_size)
    union = sorted({label for labels in bank.labels.values() for label in labels})
    candidates = placement.replicated(encode_batch(vocab, union, targets_length)) if union \
        else None
    predictions = [""] * len(inputs)
    ranked = [i for i, t in enumerate(tasks) if t in bank.labels]
    decoded = [i for i, t in enumerate(tasks) if t not in bank.labels]
    for group, rank in ((ranked, True), (decoded, False)):
        for start in range(0, len(group), batch_size):
            rows = group[start:start + batch_size]
            pad = batch_size - len(rows)
            chunk_tasks = [tasks[i] for i in rows] + [tasks[rows[0]]] * pad
            texts = [inputs[i] for i in rows] + [""] * pad
            task_rows = np.asarray([bank.index(t) for t in chunk_tasks])
            # On a pod slice each process builds only the rows its devices hold.
            ids = placement.rows(lambda r: encode_batch(vocab, texts[r], inputs_length),
                                 (batch_size, inputs_length), np.int32)
            prompt = placement.rows(lambda r: bank.prompts[task_rows[r]],
                                    (batch_size,) + bank.prompts.shape[1:], np.float32)
            mask = placement.rows(lambda r: bank.mask[task_rows[r]],
                                  (batch_size, bank.mask.shape[1]), bool)
            modes = placement.rows(lambda r: bank.after_bos[task_rows[r]], (batch_size,), bool)
            if rank:
                scores = placement.gather(score_candidates(config, params, prompt, ids,
                                                           candidates, prompt_mode=modes,
                                                           prompt_mask=mask))
                for row, i in enumerate(rows):
                    own = [union.index(label) for label in bank.labels[tasks[i]]]
                    predictions[i] = union[own[int(np.argmax(scores[row, own]))]]
            else:
                tokens = placement.gather(greedy_decode(config, params, prompt, ids,
                                                        targets_length, prompt_mode=modes,
                                                        prompt_mask=mask))
                for row, text in zip(rows, decode_tokens(vocab, tokens)):
                    predictions[row] = text
    return predictions


__all__ = ["BankEntry", "PromptBank", "bank_from_entries", "load_bank", "make_bank", "predict_mixed", "read_bank_directory"]
