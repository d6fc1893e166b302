"""T5 behind the model interface (jaxprompt.models.family): the prompt before the encoder's
inputs, target logits from the decoder, candidate scores with the encoder run once per
example, greedy decoding with the decoder's KV cache.

Shapes: B batch, T input length, S target length, C candidates, P prompt length.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxprompt.config import T5Config
from jaxprompt.data.vocabulary import EOS_ID
from jaxprompt.models.losses import sequence_log_likelihood
from jaxprompt.models.t5 import T5

Array = jax.Array


def shift_right(targets: Array) -> Array:
    """Decoder inputs [B, S]: the targets shifted right, start id 0."""
    return jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))


def target_logits(
    config: T5Config,
    params: dict,
    inputs: Array,
    targets: Array,
    prompt=None,
    prompt_mask=None,
    prompt_mode="prefix",
    deep_prompt=None,
    enable_dropout: bool = False,
    rng=None,
) -> Array:
    """Logits [B, S, V] of each target token (teacher forcing)."""
    return T5(config).apply(
        {"params": params},
        inputs,
        shift_right(targets),
        prompt=prompt,
        prompt_mask=prompt_mask,
        deep_prompt=deep_prompt,
        prompt_mode=prompt_mode,
        enable_dropout=enable_dropout,
        rngs={"dropout": rng} if enable_dropout else None,
    )


def _encode(model, params, inputs, prompt, prompt_mask, prompt_mode, deep_prompt):
    return model.apply(
        {"params": params},
        inputs,
        prompt=prompt,
        prompt_mask=prompt_mask,
        prompt_mode=prompt_mode,
        deep_prompt=deep_prompt,
        method=T5.encode,
    )


@functools.partial(jax.jit, static_argnames=("config", "prompt_mode"))
def score(
    config: T5Config,
    params: dict,
    inputs: Array,
    candidates: Array,
    prompt=None,
    prompt_mask=None,
    prompt_mode="prefix",
    deep_prompt=None,
    row_modes=None,
) -> Array:
    """Log-likelihood [B, C] of candidates [B, C, S]: the encoder runs once per example and
    its output is repeated for the C candidates. row_modes: None, or [B] bool placements
    (True: after BOS) overriding `prompt_mode` row by row."""
    prompt_mode = prompt_mode if row_modes is None else row_modes
    model = T5(config)
    batch, num_candidates, length = candidates.shape
    encoded, mask = _encode(model, params, inputs, prompt, prompt_mask, prompt_mode, deep_prompt)
    encoded = jnp.repeat(encoded, num_candidates, axis=0)  # [B * C, P + T, H]
    mask = jnp.repeat(mask, num_candidates, axis=0)
    targets = candidates.reshape(batch * num_candidates, length)  # [B * C, S]
    logits = model.apply(
        {"params": params},
        encoded,
        mask,
        shift_right(targets),
        deep_prompt=deep_prompt,
        method=T5.decode,
    )
    scores = sequence_log_likelihood(logits, targets, targets > 0)
    return scores.reshape(batch, num_candidates)


@functools.partial(jax.jit, static_argnames=("config", "max_length", "prompt_mode"))
def greedy(
    config: T5Config,
    params: dict,
    inputs: Array,
    max_length: int,
    prompt=None,
    prompt_mask=None,
    prompt_mode="prefix",
    deep_prompt=None,
    row_modes=None,
) -> Array:
    """Greedy decoding with a KV cache: [B, T] -> tokens [B, max_length] (0 after EOS)."""
    prompt_mode = prompt_mode if row_modes is None else row_modes
    model = T5(config)
    batch = inputs.shape[0]
    encoded, mask = _encode(model, params, inputs, prompt, prompt_mask, prompt_mode, deep_prompt)
    cache_shapes = jax.eval_shape(
        lambda: model.init(
            jax.random.key(0),
            encoded,
            mask,
            jnp.zeros((batch, max_length), jnp.int32),
            decode=True,
            deep_prompt=deep_prompt,
            method=T5.decode,
        )
    )["cache"]
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

    def step(carry):
        i, cache, token, out, done = carry
        logits, variables = model.apply(
            {"params": params, "cache": cache},
            encoded,
            mask,
            token[:, None],
            decode=True,
            deep_prompt=deep_prompt,
            method=T5.decode,
            mutable=["cache"],
        )
        token = jnp.where(done, 0, jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32))
        out = out.at[:, i].set(token)
        return i + 1, variables["cache"], token, out, done | (token == EOS_ID)

    def not_finished(carry):
        i, _, _, _, done = carry
        return (i < max_length) & ~jnp.all(done)

    carry = (
        jnp.zeros((), jnp.int32),
        cache,
        jnp.zeros((batch,), jnp.int32),
        jnp.zeros((batch, max_length), jnp.int32),
        jnp.zeros((batch,), bool),
    )
    return jax.lax.while_loop(not_finished, step, carry)[3]
