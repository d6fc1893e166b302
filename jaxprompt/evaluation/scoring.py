"""Model calls of evaluation: rank classification, greedy decoding, prompt ensembles.

Rank classification scores every candidate target of an example (log-likelihood of its
tokens, EOS included) in one batched pass; greedy decoding runs one token at a time against
a KV cache inside a jitted while-loop that stops when every row has emitted EOS. Both go
through the model's family (jaxprompt.models.family): T5 runs its encoder once per example,
a decoder-only LM its prefix once. Every call takes the trainable tree as one argument.
"""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.data.vocabulary import EOS_ID
from jaxprompt.models.family import family_of
from jaxprompt.prompts.trainable import as_trainable


def _placement(prompt_mode) -> tuple[str, jax.Array | None]:
    """(static mode, per-row flags): a PROMPT_MODES name, or [B] bool (True: after BOS)."""
    if isinstance(prompt_mode, str):
        return prompt_mode, None
    return "per_row", jnp.asarray(prompt_mode, bool)


def score_candidates(
    config,
    params: dict,
    trainable,
    encoder_ids: jax.Array,
    candidates: jax.Array,
    prompt_mode="prefix",
    prompt_mask=None,
) -> jax.Array:
    """Log-likelihood of each candidate target for each example.

    Args:
      trainable: the trainable tree ({"prompt": [P, H] or [B, P, H]} and/or
        {"deep_prompt": ...}); {} or None for the bare model; an array means {"prompt": it}.
      prompt_mask: None, or [P] / [B, P] booleans (prompts of a bank padded on the left).
      encoder_ids: [B, T] token ids (EOS-terminated, 0-padded).
      candidates: [C, S] target ids (EOS-terminated, 0-padded).
      prompt_mode: the prompt's placement (jaxprompt.models.combine.PROMPT_MODES), or [B]
        bool, True where a row's prompt goes after its first token.
    Returns:
      [B, C] float32 sums of token log-probabilities.
    """
    return _score_candidates(
        config, params, as_trainable(trainable), encoder_ids, candidates, prompt_mode, prompt_mask
    )


def score_own_candidates(
    config,
    params: dict,
    trainable,
    encoder_ids: jax.Array,
    candidates: jax.Array,
    prompt_mask=None,
    prompt_mode="prefix",
) -> jax.Array:
    """Each example's own candidates (a mixed-task batch: each task has its own labels).

    Args:
      trainable: as in `score_candidates` (per-example prompts [B, P, H] for a bank).
      encoder_ids: [B, T] token ids.
      candidates: [B, C, S] target ids; an all-zero row is no candidate.
      prompt_mode: as in `score_candidates` ([B] bool: each example's prompt's own).
    Returns:
      [B, C] float32 log-likelihoods, -inf where a row holds no candidate.
    """
    scores = _score_candidates(
        config, params, as_trainable(trainable), encoder_ids, candidates, prompt_mode, prompt_mask
    )
    return jnp.where(candidates[..., 0] > 0, scores, -jnp.inf)


def _score_candidates(config, params, trainable, encoder_ids, candidates, prompt_mode, prompt_mask):
    """candidates [C, S] (shared by the batch) or [B, C, S] (per example) -> [B, C]."""
    if candidates.ndim == 2:
        candidates = jnp.broadcast_to(candidates, (encoder_ids.shape[0],) + candidates.shape)
    mode, rows = _placement(prompt_mode)
    return family_of(config).score(
        config,
        params,
        encoder_ids,
        candidates,
        trainable.get("prompt"),
        prompt_mask,
        mode,
        trainable.get("deep_prompt"),
        rows,
    )


def greedy_decode(
    config,
    params: dict,
    trainable,
    encoder_ids: jax.Array,
    max_length: int,
    prompt_mode="prefix",
    prompt_mask=None,
) -> jax.Array:
    """Greedy decoding with a KV cache: [B, T] -> tokens [B, max_length] (0 after EOS).

    `trainable` and `prompt_mode` as in `score_candidates`."""
    trainable = as_trainable(trainable)
    mode, rows = _placement(prompt_mode)
    return family_of(config).greedy(
        config,
        params,
        encoder_ids,
        max_length,
        trainable.get("prompt"),
        prompt_mask,
        mode,
        trainable.get("deep_prompt"),
        rows,
    )


def ensemble_scores(
    config,
    params: dict,
    prompts: jax.Array,
    encoder_ids: jax.Array,
    candidates: jax.Array,
    prompt_mode: str = "prefix",
    prompt_mask=None,
) -> jax.Array:
    """Candidate scores under N prompts in one batched pass: [N, P, H] -> [N, B, C].

    The batch is tiled N times and each row gets its prompt ([N * B, P, H] per-example
    prompts), so the cost is one pass over N * B rows, not N separate runs. prompt_mask:
    None, or [N, P] (prompts of different lengths, left-padded as a bank pads them:
    `jaxprompt.evaluation.bank.stack_prompts`).
    """
    return _ensemble_scores(
        config, params, prompts, encoder_ids, candidates, prompt_mode, prompt_mask
    )


@functools.partial(jax.jit, static_argnames=("config", "prompt_mode"))
def _ensemble_scores(config, params, prompts, encoder_ids, candidates, prompt_mode, prompt_mask):
    num_prompts, batch = prompts.shape[0], encoder_ids.shape[0]
    rows = jnp.repeat(prompts, batch, axis=0)  # [N * B, P, H]
    ids = jnp.tile(encoder_ids, (num_prompts, 1))  # [N * B, T]
    mask = None if prompt_mask is None else jnp.repeat(prompt_mask, batch, axis=0)
    scores = _score_candidates(config, params, {"prompt": rows}, ids, candidates, prompt_mode, mask)
    return scores.reshape(num_prompts, batch, -1)


def combine_ensemble(scores: np.ndarray, how: str) -> np.ndarray:
    """[N, B, C] scores -> [B] class indices.

    vote: each prompt votes for its argmax, the most votes win (ties: the lowest class
    index), as in the paper's section 7; mean: argmax of the mean log-likelihood.
    """
    scores = np.asarray(scores)
    if how == "mean":
        return scores.mean(axis=0).argmax(axis=-1)
    if how == "vote":
        votes = np.zeros(scores.shape[1:], np.int64)
        for prompt_votes in scores.argmax(axis=-1):  # [B] per prompt
            votes[np.arange(len(prompt_votes)), prompt_votes] += 1
        return votes.argmax(axis=-1)
    raise ValueError(f"Unknown ensemble combination {how!r}; use 'vote' or 'mean'.")


def decode_tokens(vocab, tokens: np.ndarray) -> list[str]:
    texts = []
    for row in np.asarray(tokens):
        ids = row.tolist()
        ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
        texts.append(vocab.decode([i for i in ids if i > 0]))
    return texts
