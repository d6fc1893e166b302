"""Token cross-entropy with padding masked, optional z-loss and label smoothing (as t5x)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy(
    logits: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
    z_loss: float = 0.0,
    label_smoothing: float = 0.0,
) -> dict[str, jax.Array]:
    """Weighted token cross-entropy sums.

    Args:
      logits: [B, S, V] float32.
      targets: [B, S] int token ids.
      weights: [B, S] loss weights (0 at padding).
      z_loss: coefficient of log(Z)**2, which keeps the softmax normaliser near 1
        (t5x uses 1e-4).
      label_smoothing: mass spread uniformly over the vocabulary (0 = off).
    Returns:
      {"loss": sum of weighted (cross-entropy + z-loss), "z_loss": its z-loss part,
       "nll": the weighted negative log-likelihood alone, "weight": sum of weights},
      all float32 scalars; divide by "weight" for per-token means.
    """
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)  # [B, S]
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    nll = log_z - target_logit
    if label_smoothing:
        confidence = 1.0 - label_smoothing
        smooth = log_z - jnp.mean(logits, axis=-1)  # cross-entropy against uniform
        ce = confidence * nll + label_smoothing * smooth
    else:
        ce = nll
    z = z_loss * jnp.square(log_z)
    return {
        "loss": jnp.sum((ce + z) * weights),
        "z_loss": jnp.sum(z * weights),
        "nll": jnp.sum(nll * weights),
        "weight": jnp.sum(weights),
    }


def sequence_log_likelihood(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """Sum of log p(target token) over each sequence: [B, S, V], [B, S], [B, S] -> [B]."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    token = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(token * weights.astype(jnp.float32), axis=-1)
