"""Tiny models and deterministic synthetic batches for trainer tests (also run in subprocesses)."""

from __future__ import annotations

import jax
import numpy as np

from jaxprompt.models.t5 import init_params
from tests.helpers import tiny_config

# Every sharded dimension divides 8, so meshes (8, 1), (2, 4) and (1, 8) all apply.
TINY = tiny_config(
    vocab_size=64,
    num_heads=8,
    d_kv=2,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
)


def tiny_frozen(seed: int = 0) -> dict:
    return init_params(TINY, jax.random.key(seed))


def synthetic_batch(
    index: int, batch: int = 8, inputs: int = 12, targets: int = 4, seed: int = 0
) -> dict:
    """Batch number `index` of a fixed synthetic task: the target is the first input token."""
    rng = np.random.default_rng([seed, index])
    encoder = rng.integers(3, TINY.vocab_size, size=(batch, inputs)).astype(np.int32)
    encoder[:, -1] = 1
    target = np.zeros((batch, targets), np.int32)
    target[:, 0] = encoder[:, 0]
    target[:, 1] = 1
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    weights = (target > 0).astype(np.float32)
    return {
        "encoder_input_tokens": encoder,
        "decoder_input_tokens": decoder_input,
        "decoder_target_tokens": target,
        "decoder_loss_weights": weights,
    }


def synthetic_batches(position: int, **kwargs):
    """An endless deterministic stream starting at batch `position`."""
    index = position
    while True:
        yield synthetic_batch(index, **kwargs)
        index += 1


def run_steps(steps, state, frozen, count: int):
    """`count` jitted train steps on synthetic batches 0..count-1: (state, losses)."""
    losses = []
    for i in range(count):
        state, metrics = steps.train_step(state, frozen, synthetic_batch(i))
        losses.append(float(metrics["loss"]))
    return state, losses
