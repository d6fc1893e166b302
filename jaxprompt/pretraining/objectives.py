"""The pretraining objectives and batches: span corruption (15% noise, mean span 3,
sentinels), prefix LM ("LM adaptation"), denoising reconstruction, reverse-dictionary rows
and the encoder's masked-token positions. A batch is a pure function of (seed, step).
"""

from __future__ import annotations

import numpy as np

from jaxprompt.data.vocabulary import EOS_ID as EOS
from jaxprompt.pretraining.config import MASK_ID, SENTINEL_BASE, PretrainConfig


def span_corruption(chunk: np.ndarray, rng: np.random.Generator, density=0.15, mean_span=3.0):
    """T5's objective: noise spans -> sentinels in the input; targets list the spans."""
    n = len(chunk)
    noise = max(1, int(round(n * density)))
    spans = max(1, min(int(round(noise / mean_span)), n - noise))

    def partition(total, parts):
        cuts = (
            np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
            if parts > 1
            else np.array([], int)
        )
        return np.diff(np.concatenate([[0], cuts, [total]]))

    noise_lengths, keep_lengths = partition(noise, spans), partition(n - noise, spans)
    inputs, targets, position = [], [], 0
    for k, (keep, drop) in enumerate(zip(keep_lengths, noise_lengths)):
        inputs.extend(chunk[position : position + keep])
        position += keep
        inputs.append(SENTINEL_BASE - k)
        targets.append(SENTINEL_BASE - k)
        targets.extend(chunk[position : position + drop])
        position += drop
    return np.asarray(inputs + [EOS], np.int32), np.asarray(targets + [EOS], np.int32)


def prefix_lm(chunk: np.ndarray, rng: np.random.Generator, targets_length: int):
    """LM adaptation: the encoder reads a prefix, the decoder continues it."""
    low = max(1, len(chunk) - targets_length + 1)
    split = int(rng.integers(low, len(chunk)))
    return (
        np.asarray(list(chunk[:split]) + [EOS], np.int32),
        np.asarray(list(chunk[split:]) + [EOS], np.int32),
    )


def reconstruction(chunk: np.ndarray, rng: np.random.Generator):
    """Denoising autoencoding (BART's text infilling): the encoder reads the span-corrupted
    chunk, the decoder writes the whole original chunk, so most of what the decoder must
    say is in the encoder's input and cross-attention pays off from the first steps."""
    inputs, _ = span_corruption(chunk, rng)
    return inputs, np.asarray(list(chunk) + [EOS], np.int32)


def make_batch(streams, step: int, pc: PretrainConfig, pairs=()) -> dict[str, np.ndarray]:
    """The batch of `step`: a pure function of (seed, step), so resuming repeats nothing.

    `pairs`: (inputs, targets) token pairs of the reverse dictionary (`dictionary_fraction`)."""
    rng = np.random.default_rng([pc.seed, step])
    encoder = np.zeros((pc.batch, pc.inputs_length), np.int32)
    target = np.zeros((pc.batch, pc.targets_length), np.int32)
    chunk_length = pc.inputs_length - 1
    for row in range(pc.batch):
        if pc.dictionary_fraction and rng.random() < pc.dictionary_fraction:
            inputs, targets = pairs[int(rng.integers(len(pairs)))]
            if len(inputs) > pc.inputs_length:
                inputs = np.append(inputs[: pc.inputs_length - 1], EOS)
            encoder[row, : len(inputs)] = inputs
            target[row, : len(targets)] = targets[: pc.targets_length]
            continue
        stream = streams[0] if rng.random() < pc.task_text_fraction else streams[-1]
        start = int(rng.integers(0, len(stream) - chunk_length))
        chunk = stream[start : start + chunk_length]
        draw = rng.random()
        if draw < pc.lm_fraction:
            inputs, targets = prefix_lm(chunk, rng, pc.targets_length - 1)
        elif draw < pc.lm_fraction + pc.reconstruct_fraction:
            inputs, targets = reconstruction(chunk[: pc.targets_length - 1], rng)
        else:
            inputs, targets = span_corruption(chunk, rng)
        inputs, targets = inputs[: pc.inputs_length], targets[: pc.targets_length]
        encoder[row, : len(inputs)] = inputs
        target[row, : len(targets)] = targets
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    batch = {
        "decoder_input_tokens": decoder_input,
        "decoder_target_tokens": target,
        "decoder_loss_weights": (target > 0).astype(np.float32),
    }
    batch.update(mask_encoder_tokens(encoder, rng, pc.mlm_positions if pc.mlm_weight else 0))
    return batch


_WORKER_STATE: tuple = ()


def _init_batch_worker(streams, pc, pairs) -> None:
    global _WORKER_STATE
    _WORKER_STATE = (streams, pc, pairs)


def _batch_in_worker(step: int) -> dict[str, np.ndarray]:
    streams, pc, pairs = _WORKER_STATE
    return make_batch(streams, step, pc, pairs)


def batches(streams, pc: PretrainConfig, pairs, start: int, end: int, workers: int = 0):
    """The batches of steps [start, end) in order, made by `workers` processes (0: inline).

    make_batch is a pure function of (seed, step), so the workers change nothing but speed:
    an accelerator's step can be faster than one core makes the batch. At most 4 batches
    per worker are made ahead.
    """
    if workers <= 0:
        for step in range(start, end):
            yield make_batch(streams, step, pc, pairs)
        return
    import collections
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork after JAX has started threads
    with context.Pool(workers, _init_batch_worker, (streams, pc, pairs)) as pool:
        pending, next_step = collections.deque(), start
        while pending or next_step < end:
            while next_step < end and len(pending) < 4 * workers:
                pending.append(pool.apply_async(_batch_in_worker, (next_step,)))
                next_step += 1
            yield pending.popleft().get()


def mask_encoder_tokens(
    encoder: np.ndarray, rng: np.random.Generator, positions: int, rate: float = 0.15
) -> dict[str, np.ndarray]:
    """BERT-style masking of ordinary encoder tokens for the auxiliary loss.

    Up to `positions` tokens per row (each text token with probability `rate`; never padding,
    EOS, UNK or a sentinel) are replaced by MASK_ID. Returns the masked encoder_input_tokens
    [B, T] and mlm_positions / mlm_targets / mlm_weights [B, positions].
    """
    encoder = encoder.copy()
    rows = encoder.shape[0]
    where = np.zeros((rows, max(positions, 1)), np.int32)
    targets = np.zeros_like(where)
    weights = np.zeros(where.shape, np.float32)
    for row in range(rows if positions else 0):
        candidates = np.flatnonzero((encoder[row] > 2) & (encoder[row] < MASK_ID))
        chosen = candidates[rng.random(len(candidates)) < rate][:positions]
        where[row, : len(chosen)] = chosen
        targets[row, : len(chosen)] = encoder[row, chosen]
        weights[row, : len(chosen)] = 1.0
        encoder[row, chosen] = MASK_ID
    return {
        "encoder_input_tokens": encoder,
        "mlm_positions": where,
        "mlm_targets": targets,
        "mlm_weights": weights,
    }
