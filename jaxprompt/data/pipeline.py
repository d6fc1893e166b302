"""Fixed-length batches from seqio tasks, in the trainer's (EncDecFeatureConverter) format.

Training batches are shuffled deterministically by seed, repeat forever and can start at
any position (batches consumed), which the trainer stores in its checkpoints. Each host
reads only its shard (seqio.ShardInfo) of every global batch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterator

import numpy as np

from jaxprompt.data.readers import DataError
from jaxprompt.data.tasks import TextTask

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Lengths:
    inputs: int = 512  # encoder tokens (EOS included), before the prompt's P positions
    targets: int = 8  # decoder tokens (EOS included)

    def as_dict(self) -> dict[str, int]:
        return {"inputs": self.inputs, "targets": self.targets}


@dataclasses.dataclass(frozen=True)
class TruncationReport:
    examples: int
    truncated_inputs: int
    truncated_targets: int

    def __str__(self):
        return (f"{self.truncated_inputs} of {self.examples} inputs and {self.truncated_targets} "
                "targets were truncated")


def truncation_report(task: TextTask, split: str, vocab, lengths: Lengths,
                      strict: bool = False) -> TruncationReport:
    """Counts examples longer than the lengths (EOS included); raises if `strict`."""
    examples = task.examples(split)
    too_long_inputs = sum(len(vocab.encode(e["inputs"])) + 1 > lengths.inputs for e in examples)
    too_long_targets = sum(len(vocab.encode(e["targets"])) + 1 > lengths.targets for e in examples)
    report = TruncationReport(len(examples), too_long_inputs, too_long_targets)
    if strict and (too_long_inputs or too_long_targets):
        raise DataError(f"Task {task.name!r} {split}: {report} at lengths inputs="
                        f"{lengths.inputs}, targets={lengths.targets} (strict mode). Raise the "
                        "lengths or drop strict.")
    if too_long_inputs or too_long_targets:
        logger.warning("Task %s %s: %s (lengths %s).", task.name, split, report, lengths)
    return report


def _converted(task_name: str, split: str, lengths: Lengths, shuffle: bool, seed: int,
               num_epochs: int | None, shard_info):
    import seqio

    task = seqio.get_mixture_or_task(task_name)
    dataset = task.get_dataset(lengths.as_dict(), split=split, shuffle=shuffle, seed=seed,
                               num_epochs=num_epochs, shard_info=shard_info, use_cached=False,
                               trim_output_features=True)
    return seqio.EncDecFeatureConverter(pack=False)(dataset, lengths.as_dict())


def train_batches(task_name: str, batch_size: int, lengths: Lengths, seed: int = 0,
                  shard_index: int = 0, num_shards: int = 1
                  ) -> Callable[[int], Iterator[dict]]:
    """position -> endless iterator of this host's [batch_size / num_shards] training batches."""
    import seqio

    if batch_size % num_shards:
        raise DataError(f"Global batch {batch_size} is not divisible by {num_shards} hosts.")
    shard_info = seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None

    def from_position(position: int) -> Iterator[dict]:
        dataset = _converted(task_name, "train", lengths, True, seed, None, shard_info)
        dataset = dataset.batch(batch_size // num_shards, drop_remainder=True).skip(position)
        return dataset.as_numpy_iterator()

    return from_position


def pad_batch(batch: dict, batch_size: int) -> dict:
    """Pads a short final batch with all-padding rows (zero loss weight)."""
    rows = len(next(iter(batch.values())))
    if rows == batch_size:
        return batch
    return {k: np.concatenate([v, np.zeros((batch_size - rows,) + v.shape[1:], v.dtype)])
            for k, v in batch.items()}


def eval_batches(task_name: str, split: str, batch_size: int, lengths: Lengths
                 ) -> Callable[[], Iterator[dict]]:
    """A function returning one ordered pass over `split`, the last batch padded."""
    def batches():
        dataset = _converted(task_name, split, lengths, False, 0, 1, None)
        for batch in dataset.batch(batch_size).as_numpy_iterator():
            yield pad_batch(batch, batch_size)

    return batches
