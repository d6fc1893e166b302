"""Soft prompts: a pure pytree leaf [P, H] and its initializers.

Every initializer is a pure function `(rng, embedding, config) -> [P, H]` where
`embedding` is the frozen token-embedding table [V, H] and `config` a PromptConfig.
The prompt's logical axes are ("prompt", "embed"); the default rules replicate it
(it is tiny: P * H floats) so every device holds the whole prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

PROMPT_AXES = ("prompt", "embed")
# SentencePiece ids are ordered by frequency after the specials (0 pad, 1 eos, 2 unk).
FIRST_REGULAR_ID = 3
INITIALIZERS = ("uniform", "sampled_vocab", "class_labels", "text", "from_file")


class PromptError(ValueError):
    """A prompt configuration or file that cannot make a [P, H] prompt for this model."""


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    """How to build the soft prompt.

    Token ids (labels, text) are given already tokenized, so initializers stay pure;
    the CLI tokenizes with the task's vocabulary.
    """

    length: int = 100  # P, the number of prompt vectors.
    init: str = "class_labels"  # one of INITIALIZERS.
    uniform_range: float = 0.5  # `uniform`: U[-range, range].
    sample_top_k: int = 5000  # `sampled_vocab`: sample among the k most frequent tokens.
    label_token_ids: tuple[tuple[int, ...], ...] = ()  # `class_labels`: ids of each verbalizer.
    text_token_ids: tuple[int, ...] = ()  # `text`: ids of the hard prompt.
    file: str | None = None  # `from_file`: a saved prompt.

    def __post_init__(self):
        if not isinstance(self.length, int) or self.length < 1:
            raise PromptError(f"Prompt length must be a positive integer, got {self.length!r}.")
        if self.init not in INITIALIZERS:
            raise PromptError(f"Unknown prompt init {self.init!r}; choose one of {INITIALIZERS}.")
        if self.init == "class_labels" and not self.label_token_ids:
            raise PromptError(
                "init='class_labels' needs label_token_ids (the tokenized "
                "verbalizers, e.g. of 'negative' and 'positive')."
            )
        if self.init == "text" and not self.text_token_ids:
            raise PromptError("init='text' needs text_token_ids (the tokenized hard prompt).")
        if self.init == "from_file" and not self.file:
            raise PromptError("init='from_file' needs `file`, the path of a saved prompt.")


def uniform(rng: jax.Array, embedding: jax.Array, config: PromptConfig) -> jax.Array:
    """U[-r, r] with r = config.uniform_range (0.5: the paper's "random uniform" init).

    google-research/prompt-tuning's own default differs in scale; set uniform_range to match.
    """
    shape = (config.length, embedding.shape[1])
    return jax.random.uniform(rng, shape, jnp.float32, -config.uniform_range, config.uniform_range)


def sample_rows(rng: jax.Array, embedding: jax.Array, count: int, top_k: int) -> jax.Array:
    """`count` embedding rows drawn from ids [3, 3 + top_k) (without replacement if possible)."""
    top_k = min(top_k, embedding.shape[0] - FIRST_REGULAR_ID)
    ids = FIRST_REGULAR_ID + jax.random.choice(rng, top_k, (count,), replace=count > top_k)
    return jnp.take(embedding, ids, axis=0).astype(jnp.float32)


def sampled_vocab(rng: jax.Array, embedding: jax.Array, config: PromptConfig) -> jax.Array:
    """Rows copied from the embeddings of the `sample_top_k` most frequent tokens."""
    return sample_rows(rng, embedding, config.length, config.sample_top_k)


def _mean_embeddings(embedding: jax.Array, token_ids: tuple[tuple[int, ...], ...]) -> jax.Array:
    vocab = embedding.shape[0]
    rows = []
    for ids in token_ids:
        ids = [i for i in ids if i != 1]  # Drop EOS if the tokenizer appended it.
        if not ids or not all(0 <= i < vocab for i in ids):
            raise PromptError(
                f"Label/text token ids {list(ids)} must be non-empty and in "
                f"[0, {vocab}) (the model's vocabulary size)."
            )
        rows.append(
            jnp.mean(jnp.take(embedding, jnp.asarray(ids), axis=0).astype(jnp.float32), axis=0)
        )
    return jnp.stack(rows)


def class_labels(rng: jax.Array, embedding: jax.Array, config: PromptConfig) -> jax.Array:
    """Row c = mean embedding of class c's verbalizer tokens; the rest `sampled_vocab`.

    The paper's best initialisation. With more classes than P, the first P classes are used.
    """
    labels = _mean_embeddings(embedding, config.label_token_ids)[: config.length]
    rest = sample_rows(rng, embedding, config.length - labels.shape[0], config.sample_top_k)
    return jnp.concatenate([labels, rest], axis=0)


def text(rng: jax.Array, embedding: jax.Array, config: PromptConfig) -> jax.Array:
    """The embeddings of a hard prompt's tokens, truncated to P or completed by sampled_vocab."""
    ids = [i for i in config.text_token_ids if i != 1][: config.length]
    rows = _mean_embeddings(embedding, tuple((i,) for i in ids))
    rest = sample_rows(rng, embedding, config.length - rows.shape[0], config.sample_top_k)
    return jnp.concatenate([rows, rest], axis=0)


def from_file(rng: jax.Array, embedding: jax.Array, config: PromptConfig) -> jax.Array:
    """A saved prompt (any format of jaxprompt.load_prompt), checked against H and P."""
    del rng
    from jaxprompt.prompts.files import PromptFileError, load_prompt

    try:
        array = load_prompt(config.file)
    except PromptFileError as e:
        raise PromptError(str(e)) from e
    expected = (config.length, embedding.shape[1])
    if array.shape != expected:
        raise PromptError(
            f"{config.file}: prompt has shape {array.shape} but this run expects "
            f"{expected} (P = prompt length, H = the model's d_model). Set the "
            "prompt length to match, or use a prompt trained for this model."
        )
    return jnp.asarray(array)


_BY_NAME: dict[str, Callable] = {
    "uniform": uniform,
    "sampled_vocab": sampled_vocab,
    "class_labels": class_labels,
    "text": text,
    "from_file": from_file,
}


def init_prompt(
    rng: jax.Array,
    embedding: jax.Array,
    config: PromptConfig,
    max_length: int | None = None,
    embedding_scale: float = 1.0,
) -> jax.Array:
    """Builds the prompt [P, H] (float32) with the configured initializer.

    Args:
      rng: PRNG key.
      embedding: the frozen token embedding [V, H].
      config: PromptConfig.
      max_length: the encoder's input budget; P must leave room for tokens.
      embedding_scale: what the model multiplies a token's embedding row by before its
        first layer (Gemma: sqrt(H); T5: 1), applied to the rows the vocabulary inits copy,
        so that the prompt starts as the model sees those tokens.
    """
    if max_length is not None and config.length >= max_length:
        raise PromptError(
            f"Prompt length {config.length} leaves no room for inputs: the "
            f"encoder input budget is {max_length} tokens."
        )
    prompt = _BY_NAME[config.init](rng, embedding, config)
    if config.init in ("sampled_vocab", "class_labels", "text"):
        prompt = prompt * embedding_scale
    assert prompt.shape == (config.length, embedding.shape[1]), prompt.shape
    return prompt
