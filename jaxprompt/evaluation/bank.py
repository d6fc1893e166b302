"""Mixed-task batches: one frozen model, a bank of task prompts, one batch of many tasks.

The one implementation of a bank's arrays, used by `predict --prompt_bank`
(`predict_mixed`) and by the server (`jaxprompt.serving.registry` keeps snapshots of a
PromptBank). Prompts of different lengths are padded on the **left** to P_max and masked:
the masked slots are invisible to attention, and the relative distance between every real
prompt row and every token stays what it is without padding, so a mixed batch gives each
example what a single-task batch gives it. Each prompt keeps its own placement
(`prompt_mode`, [B] flags in a batch), and each task is ranked on its own labels
(`score_own_candidates` on [B, C, S] candidates; zero rows are no candidate).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.data.pipeline import encode_batch
from jaxprompt.evaluation.evaluate import over_batches
from jaxprompt.evaluation.placement import default_placement
from jaxprompt.evaluation.scoring import decode_tokens, greedy_decode, score_own_candidates
from jaxprompt.prompts.bank_directory import BankEntry


@dataclasses.dataclass(frozen=True)
class PromptBank:
    """A bank as arrays: row k of each array is task `names[k]`."""

    names: tuple[str, ...]
    prompts: np.ndarray  # [K, P_max, H] float32, left-padded with zeros
    prompt_mask: np.ndarray  # [K, P_max] bool
    after_bos: np.ndarray  # [K] bool: the task's prompt goes after the first token
    labels: dict[str, tuple[str, ...]]  # rank-classification labels; other tasks decode
    candidates: np.ndarray  # [K, C, S] int32 ids of each task's labels; zero rows: none

    def row(self, task: str) -> int:
        if task not in self.names:
            raise KeyError(f"Task {task!r} has no prompt in the bank ({', '.join(self.names)}).")
        return self.names.index(task)

    def rows(self, tasks: Sequence[str]) -> np.ndarray:
        return np.asarray([self.row(t) for t in tasks], np.int64)

    def gather(self, tasks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-example prompts [B, P_max, H] and masks [B, P_max] for a batch's tasks."""
        rows = self.rows(tasks)
        return self.prompts[rows], self.prompt_mask[rows]


def encode_labels(vocab, labels: Sequence[str], length: int | None = None) -> np.ndarray:
    """[C, S] ids of a task's labels, EOS-terminated; S: `length` (as `predict` encodes
    label_names at the targets length), default the longest label's."""
    prefix = getattr(vocab, "target_prefix", "")
    longest = max(len(vocab.encode(prefix + label)) + 1 for label in labels)
    return encode_batch(vocab, labels, length or longest, targets=True)


def make_bank(
    prompts: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str]] | None = None,
    prompt_modes: Mapping[str, str] | None = None,
    *,
    vocab=None,
    targets_length: int | None = None,
    label_ids: Mapping[str, np.ndarray] | None = None,
    prompt_length: int | None = None,
    label_shape: tuple[int, int] | None = None,
    d_model: int | None = None,
) -> PromptBank:
    """A bank of prompts {task: [P, H]} with labels and placements per task.

    label_ids: {task: [C, S]} ids of the labels, else encoded from `labels` with `vocab`
      (at `targets_length` tokens, as `jaxprompt.evaluation.predict` encodes label_names;
      default: each task's longest label).
    prompt_length, label_shape, d_model: fixed P_max, (C, S) and H (the server's compiled
    shapes, kept by an empty bank too; default: the bank's own).
    """
    names = tuple(sorted(prompts))
    widths = {np.shape(p)[1] for p in prompts.values()}
    if len(widths) > 1:
        raise ValueError(f"Prompts of one bank must share d_model; found widths {sorted(widths)}.")
    labels = {t: tuple(v) for t, v in (labels or {}).items() if v}
    if label_ids is None:
        if labels and vocab is None:
            raise ValueError(
                "A bank with labels needs the vocabulary to encode them (make_bank(..., vocab=))."
            )
        label_ids = {t: encode_labels(vocab, v, targets_length) for t, v in labels.items()}
    length = prompt_length or max((np.shape(p)[0] for p in prompts.values()), default=1)
    if d_model is not None and widths - {d_model}:
        raise ValueError(
            f"Prompts of widths {sorted(widths)} cannot join a d_model {d_model} bank."
        )
    width = d_model or (widths.pop() if widths else 1)
    bank = np.zeros((len(names), length, width), np.float32)
    mask = np.zeros((len(names), length), bool)
    ids = [label_ids.get(name) for name in names]
    num, longest = label_shape or (
        max([1] + [i.shape[0] for i in ids if i is not None]),
        max([1] + [i.shape[1] for i in ids if i is not None]),
    )
    candidates = np.zeros((len(names), num, longest), np.int32)
    for row, name in enumerate(names):
        prompt = np.asarray(prompts[name], np.float32)
        bank[row, length - len(prompt) :] = prompt
        mask[row, length - len(prompt) :] = True
        if ids[row] is not None:
            candidates[row, : ids[row].shape[0], : ids[row].shape[1]] = ids[row]
    modes = prompt_modes or {}
    after_bos = np.asarray([modes.get(n, "prefix") == "prefix_after_bos" for n in names], bool)
    return PromptBank(names, bank, mask, after_bos, labels, candidates)


def stack_prompts(prompts) -> tuple[np.ndarray, np.ndarray | None]:
    """An ensemble's prompts [P_i, H] as one [N, P_max, H] (left-padded as a bank pads) and
    its mask [N, P_max]; the mask is None when every prompt has one length."""
    if len({np.shape(p) for p in prompts}) == 1:
        return np.stack([np.asarray(p, np.float32) for p in prompts]), None
    bank = make_bank({f"{i:06d}": p for i, p in enumerate(prompts)})  # names keep the order
    return bank.prompts, bank.prompt_mask


def bank_from_entries(
    entries: Mapping[str, BankEntry], vocab, targets_length: int | None = None
) -> PromptBank:
    """`jaxprompt.prompts.bank_directory.read_bank_directory`'s entries as one PromptBank."""
    return make_bank(
        {t: e.prompt for t, e in entries.items()},
        {t: e.labels for t, e in entries.items() if e.labels},
        {t: e.prompt_mode for t, e in entries.items()},
        vocab=vocab,
        targets_length=targets_length,
    )


def predict_mixed(
    config: T5Config,
    params: dict,
    bank: PromptBank,
    vocab,
    tasks: Sequence[str],
    inputs: Sequence[str],
    *,
    inputs_length: int = 512,
    targets_length: int = 16,
    batch_size: int = 32,
    mesh=None,
    with_scores: bool = False,
) -> list:
    """Predictions for a stream of (task, input) pairs, batches mixing tasks freely.

    Tasks with labels in the bank are ranked on their own labels; the others are decoded
    greedily. `mesh`: as in `jaxprompt.evaluation.predict` (multi-host: each host builds
    only its rows). `with_scores`: (prediction, {label: log-likelihood}) per input, None
    in place of the dict for greedily decoded tasks.
    """
    placement = default_placement(mesh)
    placement.check_batch(batch_size)
    predictions = [""] * len(inputs)
    for rank in (True, False):
        group = [i for i, t in enumerate(tasks) if (t in bank.labels) == rank]
        if not group:
            continue
        rows = bank.rows([tasks[i] for i in group])

        def run(ids, index, rows=rows, rank=rank):
            chunk = rows[index]
            chunk = np.concatenate([chunk, np.full(batch_size - len(chunk), chunk[0])])
            per_row = lambda table: placement.rows(
                lambda r: table[chunk[r]], (batch_size,) + table.shape[1:], table.dtype
            )
            prompt = {"prompt": per_row(bank.prompts)}
            mask, modes = per_row(bank.prompt_mask), per_row(bank.after_bos)
            if rank:
                scores = placement.gather(
                    score_own_candidates(
                        config,
                        params,
                        prompt,
                        ids,
                        per_row(bank.candidates),
                        prompt_mask=mask,
                        prompt_mode=modes,
                    )
                )
                out = []
                for k, row in zip(chunk, scores):
                    labels = bank.labels[bank.names[k]]
                    row = row[: len(labels)]  # the bank pads every task to the most labels
                    chosen = labels[int(np.argmax(row))]
                    named = {label: float(v) for label, v in zip(labels, row)}
                    out.append((chosen, named) if with_scores else chosen)
                return out
            tokens = greedy_decode(
                config, params, prompt, ids, targets_length, prompt_mode=modes, prompt_mask=mask
            )
            texts = decode_tokens(vocab, placement.gather(tokens))
            return [(t, None) for t in texts] if with_scores else texts

        texts = [inputs[i] for i in group]
        for i, text in zip(
            group, over_batches(vocab, texts, batch_size, inputs_length, placement, run)
        ):
            predictions[i] = text
    return predictions


__all__ = [
    "PromptBank",
    "bank_from_entries",
    "encode_labels",
    "make_bank",
    "predict_mixed",
    "stack_prompts",
]
