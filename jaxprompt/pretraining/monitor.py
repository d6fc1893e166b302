"""What the pretraining run watches: the encoder's within-sentence token cosine (collapse)
and a linear probe of SST-2 sentiment on mean-pooled encoder states (held-apart training
rows; the model never trains on their labels)."""

from __future__ import annotations

import numpy as np


def representation_report(
    model, params, probe_ids: np.ndarray, probe_labels: np.ndarray, batch: int = 250
) -> dict[str, float]:
    """Collapse and quality measures of the encoder on held-apart sentences.

    token_cosine: mean pairwise cosine of the final encoder states of the tokens of one
    sentence (1.0 = every token encoded alike: collapsed). probe_encoder / probe_embeddings:
    logistic-regression accuracy (fit on the first half, scored on the second) on the
    mean-pooled final encoder states / the mean-pooled input embeddings.
    """
    import jax
    import jax.numpy as jnp
    from sklearn.linear_model import LogisticRegression

    @jax.jit
    def pooled(params, ids):
        encoded, mask = model.apply({"params": params}, ids, method=model.encode)
        weights = mask[..., None].astype(jnp.float32)
        normed = encoded / (jnp.linalg.norm(encoded, axis=-1, keepdims=True) + 1e-9)
        cos = jnp.einsum("bth,bsh->bts", normed, normed)
        pair = weights[..., 0][:, :, None] * weights[..., 0][:, None, :]
        n = jnp.sum(weights[..., 0], axis=1)
        token_cos = (jnp.sum(cos * pair, axis=(1, 2)) - n) / jnp.maximum(n * (n - 1), 1.0)
        embed = params["token_embedder"]["embedding"][ids]
        mean = lambda x: jnp.sum(x * weights, axis=1) / jnp.maximum(n[:, None], 1.0)
        return mean(encoded), mean(embed), token_cos

    outs = [pooled(params, probe_ids[i : i + batch]) for i in range(0, len(probe_ids), batch)]
    encoded, embedded, token_cos = (
        np.concatenate([np.asarray(o[k]) for o in outs]) for k in range(3)
    )
    half = len(probe_ids) // 2

    def probe(features):
        features = (features - features[:half].mean(0)) / (features[:half].std(0) + 1e-6)
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(features[:half], probe_labels[:half])
        return 100.0 * clf.score(features[half:], probe_labels[half:])

    return {
        "token_cosine": float(np.mean(token_cos)),
        "probe_encoder": probe(encoded),
        "probe_embeddings": probe(embedded),
    }
