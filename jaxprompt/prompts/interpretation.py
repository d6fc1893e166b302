"""Prompt interpretation (the paper's section 8): nearest vocabulary tokens of each prompt
position by cosine similarity to the frozen embedding table, and a similarity heatmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _cosine(prompt: jax.Array, embedding: jax.Array) -> jax.Array:
    prompt = prompt / jnp.maximum(jnp.linalg.norm(prompt, axis=-1, keepdims=True), 1e-12)
    embedding = embedding / jnp.maximum(jnp.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12)
    return prompt @ embedding.T  # [P, V]


def nearest_tokens(
    prompt, embedding, k: int = 5, vocab_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k token ids [P, k] and cosine similarities [P, k] for each prompt row.

    Args:
      prompt: [P, H]; embedding: the frozen table [V, H].
      vocab_size: only ids below it (the tokenizer's real vocabulary, e.g. 32,100 of the
        32,128 rows) are considered.
    """
    embedding = jnp.asarray(embedding, jnp.float32)[:vocab_size]
    similarity = _cosine(jnp.asarray(prompt, jnp.float32), embedding)
    scores, ids = jax.lax.top_k(similarity, k)
    return np.asarray(ids), np.asarray(scores)


def position_similarity(prompt) -> np.ndarray:
    """Cosine similarity between prompt positions [P, P]."""
    prompt = jnp.asarray(prompt, jnp.float32)
    return np.asarray(_cosine(prompt, prompt))


def plot_similarity(prompt, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(position_similarity(prompt), cmap="viridis", vmin=-1, vmax=1)
    ax.set_xlabel("prompt position")
    ax.set_ylabel("prompt position")
    ax.set_title("cosine similarity of prompt positions")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
