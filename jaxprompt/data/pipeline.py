"""Fixed-length batches in the trainer's format (seqio's EncDecFeatureConverter names).

jaxprompt's own tasks (built-in and users' files, jaxprompt.data.TEXT_TASKS) are tokenized
and batched with numpy: no TensorFlow, the same on every install. A task that exists only
in seqio's TaskRegistry (registered by the user, t5x-style) is read through seqio.

Training batches are shuffled deterministically by seed (a new permutation each epoch),
repeat forever and can start at any position (batches consumed), which the trainer stores
in its checkpoints. Each host reads only its share of every global batch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterator, Sequence

import numpy as np

from jaxprompt.data.readers import DataError
from jaxprompt.data.tasks import TEXT_TASKS, TextTask
from jaxprompt.data.vocabulary import EOS_ID, vocabulary

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
        return (
            f"{self.truncated_inputs} of {self.examples} inputs and {self.truncated_targets} "
            "targets were truncated"
        )


def truncation_report(
    task: TextTask, split: str, vocab, lengths: Lengths, strict: bool = False
) -> TruncationReport:
    """Counts examples longer than the lengths (EOS included); raises if `strict`."""
    examples = task.examples(split)
    too_long_inputs = sum(len(vocab.encode(e["inputs"])) + 1 > lengths.inputs for e in examples)
    prefix = getattr(vocab, "target_prefix", "")
    too_long_targets = sum(
        len(vocab.encode(prefix + e["targets"])) + 1 > lengths.targets for e in examples
    )
    report = TruncationReport(len(examples), too_long_inputs, too_long_targets)
    if strict and (too_long_inputs or too_long_targets):
        raise DataError(
            f"Task {task.name!r} {split}: {report} at lengths inputs="
            f"{lengths.inputs}, targets={lengths.targets} (strict mode). Raise the "
            "lengths or drop strict."
        )
    if too_long_inputs or too_long_targets:
        logger.warning("Task %s %s: %s (lengths %s).", task.name, split, report, lengths)
    return report


def encode_batch(vocab, texts: Sequence[str], length: int, targets: bool = False) -> np.ndarray:
    """Token ids [N, length]: each text truncated to length - 1, EOS appended, 0-padded
    (seqio's tokenize + append_eos_after_trim + pad). `targets`: the texts are targets, which
    a decoder-only LM's vocabulary reads as continuations (its `target_prefix`, a space)."""
    if targets:
        texts = [getattr(vocab, "target_prefix", "") + text for text in texts]
    encoded = (
        vocab.encode_batch(list(texts))
        if hasattr(vocab, "encode_batch")
        else [vocab.encode(text) for text in texts]
    )  # a seqio vocabulary
    out = np.zeros((len(texts), length), np.int32)
    for row, ids in enumerate(encoded):
        ids = list(ids)[: length - 1] + [EOS_ID]
        out[row, : len(ids)] = ids
    return out


def tokenized_split(task: TextTask, split: str, lengths: Lengths, vocab=None) -> dict:
    """Every example of `split`, encoded by `encode_batch`:
    {"encoder_input_tokens" [N, lengths.inputs], "decoder_target_tokens" [N, lengths.targets]}."""
    vocab = vocab or vocabulary()
    examples = task.examples(split)
    return {
        "encoder_input_tokens": encode_batch(
            vocab, [e["inputs"] for e in examples], lengths.inputs
        ),
        "decoder_target_tokens": encode_batch(
            vocab, [e["targets"] for e in examples], lengths.targets, targets=True
        ),
    }


def features(encoder_input_tokens: np.ndarray, decoder_target_tokens: np.ndarray) -> dict:
    """The trainer's batch: decoder inputs are the targets shifted right (start id 0)."""
    decoder_input_tokens = np.zeros_like(decoder_target_tokens)
    decoder_input_tokens[:, 1:] = decoder_target_tokens[:, :-1]
    return {
        "encoder_input_tokens": encoder_input_tokens,
        "decoder_input_tokens": decoder_input_tokens,
        "decoder_target_tokens": decoder_target_tokens,
        "decoder_loss_weights": (decoder_target_tokens > 0).astype(np.int32),
    }


def _seqio_converted(
    task_name: str,
    split: str,
    lengths: Lengths,
    shuffle: bool,
    seed: int,
    num_epochs: int | None,
    shard_info,
):
    try:
        import seqio
    except ModuleNotFoundError as e:
        raise DataError(
            f"Task {task_name!r} is not a jaxprompt task; reading seqio tasks needs "
            "seqio: pip install 'jaxprompt[data]'."
        ) from e
    if task_name not in seqio.TaskRegistry.names():
        raise DataError(
            f"Unknown task {task_name!r}: neither a jaxprompt task nor a registered seqio task."
        )
    task = seqio.get_mixture_or_task(task_name)
    dataset = task.get_dataset(
        lengths.as_dict(),
        split=split,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        shard_info=shard_info,
        use_cached=False,
        trim_output_features=True,
    )
    return seqio.EncDecFeatureConverter(pack=False)(dataset, lengths.as_dict())


def train_batches(
    task_name: str,
    batch_size: int,
    lengths: Lengths,
    seed: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    vocab=None,
) -> Callable[[int], Iterator[dict]]:
    """position -> endless iterator of this host's [batch_size / num_shards] training batches.

    Epoch e visits the train split in the order of permutation (seed, e); batches that would
    straddle two epochs are dropped (drop_remainder). Host i of n takes rows
    [i * B/n, (i+1) * B/n) of every global batch.
    """
    if batch_size % num_shards:
        raise DataError(f"Global batch {batch_size} is not divisible by {num_shards} hosts.")
    per_host = batch_size // num_shards
    task = TEXT_TASKS.get(task_name)
    if task is None:
        return _seqio_train_batches(task_name, batch_size, lengths, seed, shard_index, num_shards)
    split = tokenized_split(task, "train", lengths, vocab)
    rows = len(split["encoder_input_tokens"])
    per_epoch = rows // batch_size
    if per_epoch == 0:
        raise DataError(
            f"Task {task_name!r}: the train split has {rows} examples, fewer than "
            f"one batch of {batch_size}."
        )

    def from_position(position: int) -> Iterator[dict]:
        epoch, index = divmod(position, per_epoch)
        while True:
            order = np.random.default_rng([seed, epoch]).permutation(rows)
            for b in range(index, per_epoch):
                take = order[b * batch_size : (b + 1) * batch_size]
                take = take[shard_index * per_host : (shard_index + 1) * per_host]
                yield features(
                    split["encoder_input_tokens"][take], split["decoder_target_tokens"][take]
                )
            epoch, index = epoch + 1, 0

    return from_position


def _seqio_train_batches(task_name, batch_size, lengths, seed, shard_index, num_shards):
    def from_position(position: int) -> Iterator[dict]:
        import seqio

        shard_info = seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None
        dataset = _seqio_converted(task_name, "train", lengths, True, seed, None, shard_info)
        dataset = dataset.batch(batch_size // num_shards, drop_remainder=True).skip(position)
        return dataset.as_numpy_iterator()

    return from_position


def pad_batch(batch: dict, batch_size: int) -> dict:
    """Pads a short final batch with all-padding rows (zero loss weight)."""
    rows = len(next(iter(batch.values())))
    if rows == batch_size:
        return batch
    return {
        k: np.concatenate([v, np.zeros((batch_size - rows,) + v.shape[1:], v.dtype)])
        for k, v in batch.items()
    }


def eval_batches(
    task_name: str,
    split: str,
    batch_size: int,
    lengths: Lengths,
    vocab=None,
    max_examples: int | None = None,
) -> Callable[[], Iterator[dict]]:
    """A function returning one ordered pass over `split` (its first `max_examples`, if
    given), the last batch padded."""
    task = TEXT_TASKS.get(task_name)

    def batches():
        if task is None:
            dataset = _seqio_converted(task_name, split, lengths, False, 0, 1, None)
            if max_examples is not None:
                dataset = dataset.take(max_examples)
            for batch in dataset.batch(batch_size).as_numpy_iterator():
                yield pad_batch(batch, batch_size)
            return
        tokens = tokenized_split(task, split, lengths, vocab)
        inputs, targets = tokens["encoder_input_tokens"], tokens["decoder_target_tokens"]
        inputs, targets = inputs[:max_examples], targets[:max_examples]
        for start in range(0, len(inputs), batch_size):
            yield pad_batch(
                features(inputs[start : start + batch_size], targets[start : start + batch_size]),
                batch_size,
            )

    return batches
