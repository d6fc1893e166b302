"""A decoder-only LM behind the model interface (jaxprompt.models.family): the soft prompt
placed in the sequence, target logits for training, candidate scores and greedy decoding.

Batches keep the trainer's format (inputs [B, T] and targets [B, S], each EOS-terminated
and 0-padded on the right, as for T5). The model reads one sequence per example:

    [prompt; BOS; input; target]   (placement "prefix"; "prefix_after_bos": [BOS; prompt; ...])

the inputs' EOS dropped, positions running through the prompt, causal attention, and the
LM head evaluated only where a target token is scored.

Under causal attention the positions before the first token of a row depend on nothing
the row holds: a prompt shared by the batch ([P, H], no mask) is run once, as batch 1, into
a KV cache that every row then attends to (gradients flow through it). Per-row prompts (a
bank, an ensemble) are part of each row instead. The rows are packed on the right for
training ([BOS; input; target; pad]) and on the left for scoring and decoding ([pad; BOS;
input]), so that every row's last position is its last token; candidates and generated
tokens continue from the cache. Padding is masked and positions count real tokens only, so
it changes nothing (sliding windows too are measured in positions).

Shapes: B batch, T input length, S target length, C candidates, P prompt length,
L = P + T, H d_model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.models.combine import combine_prompt
from jaxprompt.models.decoder import DecoderLM
from jaxprompt.models.losses import sequence_log_likelihood

Array = jax.Array


def _check_no_deep_prompt(deep_prompt) -> None:
    if deep_prompt is not None:
        raise ValueError(
            "Deep prompts are implemented for T5 only; train a decoder-only LM with a prompt "
            "(train.deep_prompt_length = 0)."
        )


def _shared(prompt, prompt_mask) -> bool:
    """Whether the prompt is the same for every row: [P, H] with no padding mask."""
    return prompt is not None and prompt.ndim == 2 and prompt_mask is None


def _embed(config, params, ids):
    return DecoderLM(config).apply({"params": params}, ids, method=DecoderLM.embed)


def _prefix(config, params, prompt, prompt_mode) -> Array:
    """The part of every row's sequence that the batch shares: [1, P, H] (placement
    "prefix") or [BOS; prompt] [1, 1 + P, H] ("prefix_after_bos")."""
    prompt = prompt[None].astype(jnp.dtype(config.dtype))
    if prompt_mode == "prefix":
        return prompt
    bos = _embed(config, params, jnp.full((1, 1), config.bos_id, jnp.int32))
    return jnp.concatenate([bos, prompt], axis=1)


def row_inputs(config, params, inputs, prompt, prompt_mask, prompt_mode, shared: bool):
    """inputs [B, T] -> (embeds [B, L, H], mask [B, L], end [B]): what each row holds after
    the shared prefix, packed on the right: [BOS; input], [input] when BOS is in the shared
    prefix, or the whole [prompt; BOS; input] when the prompt differs per row (a bank);
    the inputs' EOS dropped. `end` is one past each row's last real position."""
    count = jnp.sum(inputs > 0, axis=1)  # [B]: tokens + EOS = BOS + tokens
    length = inputs.shape[1]
    tokens = jnp.concatenate([jnp.full_like(inputs[:, :1], config.bos_id), inputs[:, :-1]], 1)
    mask = jnp.arange(length)[None] < count[:, None]
    if shared and prompt_mode == "prefix_after_bos":  # BOS is in the prefix
        tokens, mask, count = inputs, jnp.arange(length)[None] < count[:, None] - 1, count - 1
    x = _embed(config, params, jnp.where(mask, tokens, config.pad_id))
    if prompt is not None and not shared:
        x, mask = combine_prompt(x, mask, prompt, prompt_mask, prompt_mode)
        count = count + prompt.shape[-2]
    return x, mask, count


def _run(config, params, prefix, x, mask, extra: int):
    """Runs the shared prefix ([1, P', H] or None) once, then the rows x [B, L, H] (mask
    [B, L]) against its keys, into a KV cache with room for `extra` more positions.

    Returns (hidden [B, L, H], cache, key mask [B, P' + L + extra], positions [B, L]).
    """
    model = DecoderLM(config)
    batch, length = mask.shape
    shared = 0 if prefix is None else prefix.shape[1]
    total = shared + length + extra
    shapes = jax.eval_shape(
        lambda: model.init(
            jax.random.key(0),
            jnp.zeros((1, total, config.d_model), x.dtype),
            jnp.zeros((1, total), jnp.int32),
            jnp.ones((1, total), bool),
            decode=True,
            method=DecoderLM.hidden,
        )
    )["cache"]
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    hidden = functools.partial(model.apply, method=DecoderLM.hidden, decode=True, mutable=["cache"])
    if shared:
        prefix_mask = jnp.ones((1, total), bool)
        positions = jnp.arange(shared)[None]
        _, variables = hidden({"params": params, "cache": cache}, prefix, positions, prefix_mask)
        cache = variables["cache"]
    cache = _repeat_rows(cache, batch)
    key_mask = jnp.concatenate(
        [jnp.ones((batch, shared), bool), mask, jnp.ones((batch, extra), bool)], axis=1
    )
    positions = shared + _positions(mask)
    h, variables = hidden({"params": params, "cache": cache}, x, positions, key_mask)
    return h, variables["cache"], key_mask, positions


def _positions(mask: Array) -> Array:
    """RoPE positions [B, L]: real positions counted from 0, padding repeats its neighbour."""
    return jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)


def _repeat_rows(tree, times: int):
    """Repeats the batch axis of a cache (axis 0, or 1 under scan_layers) `times` times."""
    return jax.tree.map(lambda a: a if a.ndim < 4 else jnp.repeat(a, times, axis=a.ndim - 4), tree)


def target_logits(
    config: DecoderConfig,
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
    """Logits [B, S, V] of each target token given [prompt; BOS; input; earlier targets]. A
    prompt shared by the batch runs once, not once per row. These models have no dropout
    (DecoderConfig refuses a rate), so enable_dropout changes nothing."""
    _check_no_deep_prompt(deep_prompt)
    shared = _shared(prompt, prompt_mask)
    x, mask, end = row_inputs(config, params, inputs, prompt, prompt_mask, prompt_mode, shared)
    prefix = _prefix(config, params, prompt, prompt_mode) if shared else None
    length, steps = mask.shape[1], targets.shape[1]
    x = jnp.concatenate([x, _embed(config, params, targets)], 1)
    mask = jnp.concatenate([mask, targets > 0], 1)
    j = jnp.arange(length + steps)[None]  # [1, L + S]
    after = j - end[:, None]  # the target index of an output position, where >= 0
    source = jnp.where((after >= 0) & (after < steps), length + after, j)
    x = jnp.take_along_axis(x, source[..., None], axis=1)
    mask = jnp.take_along_axis(mask, source, axis=1) & (after < steps)
    h, _, _, _ = _run(config, params, prefix, x, mask, 0)
    at = end[:, None] - 1 + jnp.arange(steps)[None]  # the position before each target
    h = jnp.take_along_axis(h, at[..., None], axis=1)  # [B, S, H]
    return DecoderLM(config).apply({"params": params}, h, method=DecoderLM.logits)


def _left_packed(x: Array, mask: Array, end: Array) -> tuple[Array, Array]:
    """Moves each row's first `end` positions to the right end: [pad; content]."""
    length = mask.shape[1]
    source = jnp.arange(length)[None] - (length - end)[:, None]
    valid = source >= 0
    source = jnp.maximum(source, 0)
    x = jnp.take_along_axis(x, source[..., None], axis=1)
    return x, jnp.take_along_axis(mask, source, axis=1) & valid


def _prefix_with_cache(config, params, inputs, prompt, prompt_mask, prompt_mode, extra: int):
    """Runs [prompt; BOS; input] into a KV cache with room for `extra` more positions, each
    row padded on the left so that its last position is its last token. Returns (last
    hidden [B, H], cache, key mask [B, P' + L + extra], next position [B])."""
    shared = _shared(prompt, prompt_mask)
    x, mask, end = row_inputs(config, params, inputs, prompt, prompt_mask, prompt_mode, shared)
    x, mask = _left_packed(x, mask, end)
    prefix = _prefix(config, params, prompt, prompt_mode) if shared else None
    h, cache, key_mask, positions = _run(config, params, prefix, x, mask, extra)
    return h[:, -1], cache, key_mask, positions[:, -1] + 1


@functools.partial(jax.jit, static_argnames=("config", "prompt_mode"))
def score(
    config: DecoderConfig,
    params: dict,
    inputs: Array,
    candidates: Array,
    prompt=None,
    prompt_mask=None,
    prompt_mode="prefix",
    deep_prompt=None,
    row_modes=None,
) -> Array:
    """Log-likelihood [B, C] of each example's candidates [B, C, S] (EOS-terminated,
    0-padded) as continuations of [prompt; BOS; input]: the prefix runs once. row_modes:
    None, or [B] bool placements (True: after BOS) overriding `prompt_mode` row by row."""
    _check_no_deep_prompt(deep_prompt)
    prompt_mode = prompt_mode if row_modes is None else row_modes
    model = DecoderLM(config)
    batch, count, steps = candidates.shape
    last, cache, key_mask, start = _prefix_with_cache(
        config, params, inputs, prompt, prompt_mask, prompt_mode, steps
    )
    targets = candidates.reshape(batch * count, steps)
    cache = _repeat_rows(cache, count)
    key_mask = jnp.repeat(key_mask, count, axis=0)
    positions = jnp.repeat(start, count)[:, None] + jnp.arange(steps)[None]
    y = model.apply({"params": params}, targets, method=DecoderLM.embed)
    h, _ = model.apply(
        {"params": params, "cache": cache},
        y,
        positions,
        key_mask,
        decode=True,
        method=DecoderLM.hidden,
        mutable=["cache"],
    )
    h = jnp.concatenate([jnp.repeat(last, count, axis=0)[:, None], h[:, :-1]], axis=1)
    logits = model.apply({"params": params}, h, method=DecoderLM.logits)  # [B * C, S, V]
    return sequence_log_likelihood(logits, targets, targets > 0).reshape(batch, count)


@functools.partial(jax.jit, static_argnames=("config", "max_length", "prompt_mode"))
def greedy(
    config: DecoderConfig,
    params: dict,
    inputs: Array,
    max_length: int,
    prompt=None,
    prompt_mask=None,
    prompt_mode="prefix",
    deep_prompt=None,
    row_modes=None,
) -> Array:
    """Greedy continuation [B, max_length] of [prompt; BOS; input] with a KV cache (0 after
    the model's EOS, which is kept)."""
    _check_no_deep_prompt(deep_prompt)
    prompt_mode = prompt_mode if row_modes is None else row_modes
    model = DecoderLM(config)
    batch = inputs.shape[0]
    last, cache, key_mask, start = _prefix_with_cache(
        config, params, inputs, prompt, prompt_mask, prompt_mode, max_length
    )
    first = model.apply({"params": params}, last, method=DecoderLM.logits)
    token = jnp.argmax(first, axis=-1).astype(jnp.int32)
    out = jnp.zeros((batch, max_length), jnp.int32).at[:, 0].set(token)

    def step(carry):
        i, cache, token, out, done = carry
        y = model.apply({"params": params}, token[:, None], method=DecoderLM.embed)
        h, variables = model.apply(
            {"params": params, "cache": cache},
            y,
            (start + i - 1)[:, None],
            key_mask,
            decode=True,
            method=DecoderLM.hidden,
            mutable=["cache"],
        )
        logits = model.apply({"params": params}, h[:, 0], method=DecoderLM.logits)
        token = jnp.where(done, 0, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        out = out.at[:, i].set(token)
        return i + 1, variables["cache"], token, out, done | (token == config.eos_id)

    def not_finished(carry):
        i, _, _, _, done = carry
        return (i < max_length) & ~jnp.all(done)

    carry = (jnp.ones((), jnp.int32), cache, token, out, token == config.eos_id)
    return jax.lax.while_loop(not_finished, step, carry)[3]
