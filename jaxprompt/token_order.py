"""Token ids as jaxprompt's pipeline needs them: padding 0, EOS 1.

The data pipeline, the scorers and the server pad with id 0 and end every sequence with id 1
(T5's ids, and Gemma's: `data.vocabulary.EOS_ID`). Llama 3 and Qwen give ids 0 and 1 to real
tokens ("!" and '"') and put their EOS elsewhere. Such a checkpoint is read in a reordered
vocabulary: its EOS becomes id 1, its padding id 0 (the padding token it declares, else its
last embedding row, which the tokenizers of these families never emit for text: a reserved
special token in Llama 3, an unused row in Qwen), and the tokens that held 0 and 1 take their
old ids. The embedding rows (and an untied LM head's) and the tokenizer's ids are reordered by
the same permutation when they are loaded, so the model computes what the checkpoint
computes; writing a checkpoint maps back.

A reordering is recorded as `moves`: ((checkpoint id, id here), ...) for every id that moved,
sorted; () when the checkpoint already has padding 0 and EOS 1.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

Moves = tuple[tuple[int, int], ...]


def pipeline_moves(eos: int, pad: int | None, rows: int) -> Moves:
    """The moves that put checkpoint id `eos` at 1 and the padding at 0.

    `pad` None (or equal to EOS) means the checkpoint declares no padding token of its own:
    its last row that is not EOS takes id 0.
    """
    if pad is None or pad == eos:
        pad = rows - 1 if eos != rows - 1 else rows - 2
    holder: dict[int, int] = {}  # id here -> checkpoint id, for the ids that were touched
    for slot, wanted in ((1, eos), (0, pad)):
        # The touched ids are permuted among themselves, so an untouched `wanted` is still
        # at its own id.
        here = next((k for k, v in holder.items() if v == wanted), wanted)
        if here != slot:
            holder[slot], holder[here] = wanted, holder.get(slot, slot)
    return tuple(sorted((ckpt, here) for here, ckpt in holder.items() if ckpt != here))


def as_moves(value: Iterable) -> Moves:
    """Moves from JSON-like input ([[a, b], ...]), validated: a permutation of its ids."""
    moves = tuple(sorted((int(a), int(b)) for a, b in value))
    if sorted(a for a, _ in moves) != sorted(b for _, b in moves):
        raise ValueError(f"token moves {moves!r} are not a permutation of their ids")
    return moves


def to_here(ids: list[int], moves: Moves) -> list[int]:
    """Checkpoint (tokenizer) ids -> the ids the model is run with."""
    if not moves:
        return ids
    table = dict(moves)
    return [table.get(i, i) for i in ids]


def to_checkpoint(ids: list[int], moves: Moves) -> list[int]:
    """The ids the model is run with -> the checkpoint's (tokenizer's) ids."""
    if not moves:
        return ids
    table = {here: ckpt for ckpt, here in moves}
    return [table.get(i, i) for i in ids]


def rows_here(array: np.ndarray, moves: Moves, axis: int = 0) -> np.ndarray:
    """A checkpoint's [V, ...] table (or [..., V] with axis=-1) with its rows at the ids here."""
    if not moves:
        return array
    order = np.arange(array.shape[axis])
    for ckpt, here in moves:
        order[here] = ckpt
    return np.take(array, order, axis=axis)


def rows_back(array: np.ndarray, moves: Moves, axis: int = 0) -> np.ndarray:
    """Inverse of `rows_here`: the table in the checkpoint's order."""
    return rows_here(array, tuple((here, ckpt) for ckpt, here in moves), axis)
