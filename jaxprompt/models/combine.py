"""Pure functions that put a soft prompt into the encoder's input embeddings.

Each maps (embeds [B, T, H], mask [B, T], prompt [P, H] | [B, P, H],
prompt_mask None | [P] | [B, P]) to (embeds [B, P + T, H], mask [B, P + T]).
Masked prompt positions (prompts padded to a common length) are invisible to
attention; pad prompts on the left so relative distances between real prompt
rows and tokens stay those of the unpadded prompt. The placement (`mode`) is one of
PROMPT_MODES for the whole batch, or a [B] bool array (True: "prefix_after_bos") when a
batch mixes prompts of both placements (a prompt bank, the server).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PROMPT_MODES = ("prefix", "prefix_after_bos")


def _batched(prompt: jax.Array, prompt_mask: jax.Array | None, batch: int, dtype):
    """Broadcasts prompt to [B, P, H] and its mask to [B, P] (all ones if None)."""
    if prompt.ndim == 2:
        prompt = jnp.broadcast_to(prompt[None], (batch,) + prompt.shape)
    prompt_length = prompt.shape[1]
    if prompt_mask is None:
        prompt_mask = jnp.ones((batch, prompt_length), dtype=bool)
    elif prompt_mask.ndim == 1:
        prompt_mask = jnp.broadcast_to(prompt_mask[None], (batch, prompt_length))
    return prompt.astype(dtype), prompt_mask.astype(bool)


def prefix_prompt(embeds, mask, prompt, prompt_mask=None):
    """[prompt; tokens]: the paper's placement, before the first token."""
    prompt, prompt_mask = _batched(prompt, prompt_mask, embeds.shape[0], embeds.dtype)
    return (
        jnp.concatenate([prompt, embeds], axis=1),
        jnp.concatenate([prompt_mask, mask.astype(bool)], axis=1),
    )


def prefix_after_bos_prompt(embeds, mask, prompt, prompt_mask=None, rows=None):
    """[first token; prompt; rest]: keeps a leading BOS-like token first.

    A left-padded prompt's padding goes before the first token ([pad; first; prompt;
    rest]), so the first token keeps its distance to the real prompt rows. `rows`: None
    (every row), or [B] bool: only those rows move their first token; the others stay
    [prompt; tokens].
    """
    x, m = prefix_prompt(embeds, mask, prompt, prompt_mask)
    prompt_length = x.shape[1] - embeds.shape[1]
    pads = prompt_length - m[:, :prompt_length].sum(axis=1, keepdims=True)  # [B, 1]
    j = jnp.arange(x.shape[1])[None]  # [1, P + T]
    # Output position `pads` takes the first token (at P); pads + 1 .. P the prompt rows.
    source = jnp.where(
        j == pads, prompt_length, jnp.where((j > pads) & (j <= prompt_length), j - 1, j)
    )
    if rows is not None:
        source = jnp.where(rows[:, None], source, j)
    return (
        jnp.take_along_axis(x, source[..., None], axis=1),
        jnp.take_along_axis(m, source, axis=1),
    )


def combine_prompt(embeds, mask, prompt, prompt_mask=None, mode="prefix"):
    """Dispatches on `mode`: one of PROMPT_MODES, or [B] bool (True: prefix_after_bos)."""
    if prompt.ndim not in (2, 3) or prompt.shape[-1] != embeds.shape[-1]:
        raise ValueError(
            f"prompt must be [P, {embeds.shape[-1]}] or [B, P, {embeds.shape[-1]}] "
            f"(H = d_model); got shape {tuple(prompt.shape)}."
        )
    if prompt.ndim == 3 and prompt.shape[0] != embeds.shape[0]:
        raise ValueError(
            f"per-example prompt has batch {prompt.shape[0]} but the inputs have "
            f"batch {embeds.shape[0]}."
        )
    if not isinstance(mode, str):
        return prefix_after_bos_prompt(
            embeds, mask, prompt, prompt_mask, rows=jnp.asarray(mode, bool)
        )
    if mode == "prefix":
        return prefix_prompt(embeds, mask, prompt, prompt_mask)
    if mode == "prefix_after_bos":
        return prefix_after_bos_prompt(embeds, mask, prompt, prompt_mask)
    raise ValueError(f"Unknown prompt mode {mode!r}; expected one of {PROMPT_MODES}.")
