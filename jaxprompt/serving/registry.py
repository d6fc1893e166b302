"""The served prompts: a task table that changes while serving, read as immutable snapshots.

Every change (add, replace, delete) builds a new `BankSnapshot` and swaps one reference,
so a batch in flight keeps the snapshot it started with: the old prompt serves until the
new one is in. A snapshot's arrays are a `jaxprompt.evaluation.bank.PromptBank` (the one
implementation of padding and masking) at the server's fixed shapes: prompts left-padded to
`max_prompt_length`, label lists to [C, S], powers of two covering the bank's largest label
set and longest label, which only ever grow, so every shape the server has compiled stays
valid.
"""

from __future__ import annotations

import dataclasses
import re
import threading

import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.evaluation.bank import PromptBank, encode_labels, make_bank
from jaxprompt.models.combine import PROMPT_MODES
from jaxprompt.prompts.files import check_finite, check_width

TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TaskError(ValueError):
    """A prompt or task the server refuses (the message names the field and the fix)."""


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    prompt: np.ndarray  # [P, H] float32
    labels: tuple[str, ...] | None  # rank-classification candidates; None: greedy decoding
    label_ids: np.ndarray | None  # [C, S] token ids of the labels
    source: str  # where the prompt came from (a path, or "upload")
    prompt_mode: str = "prefix"  # the prompt's own placement (jaxprompt.models.combine)

    @property
    def method(self) -> str:
        return "rank" if self.labels else "greedy"

    def describe(self) -> dict:
        return {
            "task": self.name,
            "prompt_length": int(self.prompt.shape[0]),
            "d_model": int(self.prompt.shape[1]),
            "method": self.method,
            "labels": list(self.labels) if self.labels else None,
            "source": self.source,
            "prompt_mode": self.prompt_mode,
        }


@dataclasses.dataclass(frozen=True)
class BankSnapshot:
    """The served tasks and their bank (row k of each array is task `bank.names[k]`)."""

    tasks: dict[str, Task]
    bank: PromptBank

    def row(self, task: str) -> int:
        return self.bank.row(task)


class TaskRegistry:
    """The served tasks, checked against the frozen model's shapes; thread-safe."""

    def __init__(
        self,
        config: T5Config,
        vocab,
        *,
        max_prompt_length: int,
        max_labels: int,
        targets_length: int,
    ):
        self.config, self.vocab = config, vocab
        self.max_prompt_length, self.max_labels = max_prompt_length, max_labels
        self.targets_length = targets_length
        self._lock = threading.Lock()
        self._label_shape = (1, 1)  # [C, S] of the candidates; grows, never shrinks
        self._snapshot = self._build({})

    def make_task(
        self, name: str, prompt: np.ndarray, labels, source: str, prompt_mode: str = "prefix"
    ) -> Task:
        """Validates a task against the model and the server's fixed shapes."""
        if not isinstance(name, str) or not TASK_NAME.match(name):
            raise TaskError(
                f"task name {name!r}: use 1-64 letters, digits, '_', '.', '-' "
                "(starting with a letter or digit)."
            )
        prompt = np.asarray(prompt, np.float32)
        if prompt.ndim != 2:
            raise TaskError(f"{source}: a prompt is [P, H]; found shape {prompt.shape}.")
        check_width(prompt, self.config.d_model, source)
        check_finite(prompt, source)
        if not 1 <= len(prompt) <= self.max_prompt_length:
            raise TaskError(
                f"{source}: prompt length {len(prompt)}; this server takes 1 to "
                f"{self.max_prompt_length} rows (--max_prompt_length)."
            )
        label_ids = None
        if labels is not None:
            if (
                not isinstance(labels, (list, tuple))
                or not labels
                or not all(isinstance(x, str) and x for x in labels)
            ):
                raise TaskError(
                    "labels: a non-empty list of non-empty strings, or null for greedy decoding."
                )
            if len(set(labels)) != len(labels):
                raise TaskError(f"labels: {list(labels)} repeats a label.")
            if len(labels) > self.max_labels:
                raise TaskError(
                    f"labels: {len(labels)} labels; this server scores at most "
                    f"{self.max_labels} per task (--max_labels)."
                )
            prefix = getattr(self.vocab, "target_prefix", "")
            lengths = [len(self.vocab.encode(prefix + label)) + 1 for label in labels]  # + EOS
            for label, length in zip(labels, lengths):
                if length > self.targets_length:
                    raise TaskError(
                        f"labels: {label!r} is longer than --targets_length "
                        f"{self.targets_length} tokens."
                    )
            label_ids = encode_labels(self.vocab, labels)
            labels = tuple(labels)
        if prompt_mode not in PROMPT_MODES:
            raise TaskError(f"{source}: prompt_mode {prompt_mode!r} is not one of {PROMPT_MODES}.")
        return Task(name, prompt, labels, label_ids, source, prompt_mode)

    def put(self, task: Task) -> bool:
        """Adds or replaces a task; returns True if it replaced one."""
        with self._lock:
            tasks = dict(self._snapshot.tasks)
            replaced = task.name in tasks
            tasks[task.name] = task
            self._snapshot = self._build(tasks, keep_shape=False)
            self._label_shape = self._snapshot.bank.candidates.shape[1:]
        return replaced

    def delete(self, name: str) -> Task:
        with self._lock:
            tasks = dict(self._snapshot.tasks)
            if name not in tasks:
                raise KeyError(name)
            removed = tasks.pop(name)
            self._snapshot = self._build(tasks)
        return removed

    def preview(self, task: Task) -> BankSnapshot:
        """The bank as it would be with `task` added, without serving it."""
        return self._build({**self._snapshot.tasks, task.name: task}, keep_shape=False)

    def snapshot(self) -> BankSnapshot:
        return self._snapshot  # one reference read: atomic

    def _build(self, tasks: dict[str, Task], keep_shape: bool = True) -> BankSnapshot:
        num, longest = self._label_shape
        if not keep_shape:
            for task in tasks.values():
                if task.label_ids is not None:
                    num = max(num, _power_of_two(task.label_ids.shape[0]))
                    longest = max(longest, _power_of_two(task.label_ids.shape[1]))
        bank = make_bank(
            {n: t.prompt for n, t in tasks.items()},
            {n: t.labels for n, t in tasks.items() if t.labels},
            {n: t.prompt_mode for n, t in tasks.items()},
            label_ids={n: t.label_ids for n, t in tasks.items() if t.label_ids is not None},
            prompt_length=self.max_prompt_length,
            label_shape=(num, longest),
            d_model=self.config.d_model,
        )
        return BankSnapshot(dict(tasks), bank)


def _power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


__all__ = ["BankSnapshot", "Task", "TaskError", "TaskRegistry"]
