"""T5's building blocks in flax.linen: embedding, projections, RMS norm, relative position
bias, multi-head attention (with optional deep-prompt prefixes and a KV cache), MLP.

Every parameter carries logical axis names (`vocab`, `embed`, `mlp`, `joined_kv`, `heads`,
`relpos_buckets`). Shapes: B batch, T/S lengths, P prompt length, H d_model,
K = num_heads * d_kv, V vocab.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.models.dots import einsum

Array = jax.Array
Initializer = Callable[..., Array]


def _normal(stddev: float) -> Initializer:
    return nn.initializers.normal(stddev=stddev)


def _activation(config: T5Config) -> Callable[[Array], Array]:
    if config.activation == "relu":
        return jax.nn.relu
    if config.activation == "silu":
        return jax.nn.silu
    # transformers' "gated-gelu" uses gelu_new (tanh approximation); plain "gelu" is exact.
    return functools.partial(jax.nn.gelu, approximate=config.is_gated)


def relative_position_buckets(
    query_length: int, key_length: int, bidirectional: bool, num_buckets: int, max_distance: int
) -> np.ndarray:
    """Bucket id of every (query, key) pair, as T5 defines it: int32 [T_q, T_k].

    Computed in numpy from static lengths (no tracers involved). Half the buckets
    hold exact small distances, the rest cover distances up to `max_distance`
    logarithmically; bidirectional buckets split first on the sign.
    """
    relative = np.arange(key_length)[None, :] - np.arange(query_length)[:, None]  # key - query
    buckets = np.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).astype(relative.dtype) * num_buckets
        distance = np.abs(relative)
    else:
        distance = -np.minimum(relative, 0)
    max_exact = num_buckets // 2
    # Distances below max_exact use the exact branch; clamp them to keep log() finite.
    log_ratio = np.log(
        np.maximum(distance, max_exact).astype(np.float32) / np.float32(max_exact)
    ) / np.float32(np.log(max_distance / max_exact))
    large = max_exact + (log_ratio * np.float32(num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    buckets += np.where(distance < max_exact, distance, large)
    return buckets.astype(np.int32)


class Embed(nn.Module):
    """Token embedding table [V, H]; `attend` maps [..., H] to logits [..., V]."""

    vocab_size: int
    features: int
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(_normal(1.0), ("vocab", "embed")),
            (self.vocab_size, self.features),
            jnp.float32,
        )

    def __call__(self, ids: Array) -> Array:
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: Array) -> Array:
        return einsum("...h,vh->...v", x.astype(self.dtype), self.embedding.astype(self.dtype))


class Dense(nn.Module):
    """Bias-free projection [..., in] -> [..., features] with a logical-axes kernel."""

    features: int
    axes: tuple[str, str]
    init_std: float
    dtype: jnp.dtype = jnp.float32  # the product's operands
    out_dtype: jnp.dtype | None = None  # the result's (None: dtype); accumulation is float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(_normal(self.init_std), self.axes),
            (x.shape[-1], self.features),
            jnp.float32,
        )
        return einsum(
            "...i,io->...o", x.astype(self.dtype), kernel.astype(self.dtype), self.out_dtype
        )


class RMSNorm(nn.Module):
    """T5's layer norm: scale only, no mean subtraction, no bias; statistics in float32."""

    epsilon: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
            (x.shape[-1],),
            jnp.float32,
        )
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon)
        return (x * scale.astype(jnp.float32)).astype(self.dtype)


class RelativePositionBias(nn.Module):
    """Learned per-head bias for each relative-distance bucket: table [heads, buckets]."""

    config: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, query_length: int, key_length: int, buckets: Array | None = None) -> Array:
        """Returns the bias [1, heads, T_q, T_k] in float32 (of given `buckets` [T_q, T_k],
        as UMT5's layers take them, each with its own table)."""
        c = self.config
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(_normal(c.d_model**-0.5), ("heads", "relpos_buckets")),
            (c.num_heads, c.relative_attention_num_buckets),
            jnp.float32,
        )
        if buckets is None:
            buckets = relative_position_buckets(
                query_length,
                key_length,
                self.bidirectional,
                c.relative_attention_num_buckets,
                c.relative_attention_max_distance,
            )
        return jnp.take(table.astype(jnp.float32), buckets, axis=1)[None]


def prepend_prefix(
    key: Array, value: Array, bias: Array, prefix: dict
) -> tuple[Array, Array, Array]:
    """Puts a layer's deep-prompt keys and values before the real ones.

    key, value [B, T_k, heads, d_kv]; prefix {"key", "value"} [P, heads * d_kv]; bias
    [B|1, heads|1, T_q, T_k]. Returns [B, P + T_k, heads, d_kv] twice and the bias with P
    zero columns in front: every query sees every prefix position, without position bias.
    """
    batch, _, heads, d_kv = key.shape

    def expand(rows: Array) -> Array:
        rows = rows.reshape(1, rows.shape[0], heads, d_kv).astype(key.dtype)
        return jnp.broadcast_to(rows, (batch,) + rows.shape[1:])

    length = prefix["key"].shape[0]
    bias = jnp.pad(bias, [(0, 0)] * (bias.ndim - 1) + [(length, 0)])
    return (
        jnp.concatenate([expand(prefix["key"]), key], axis=1),
        jnp.concatenate([expand(prefix["value"]), value], axis=1),
        bias,
    )


def attention_bias(mask: Array) -> Array:
    """Additive bias from a boolean key mask [B, T_k] or [B, T_q, T_k]: [B, 1, T_q|1, T_k]."""
    if mask.ndim == 2:
        mask = mask[:, None, :]
    return jnp.where(mask[:, None], 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)


class MultiHeadAttention(nn.Module):
    """Multi-head dot-product attention without 1/sqrt(d_kv) scaling (T5 folds it into init).

    With `decode=True` keys and values are appended to a cache of shape [B, S_max, heads, d_kv]
    (self-attention only): initialise it by running once with full-length dummy inputs.
    A deep-prompt `prefix` ({"key", "value"} [P, K]) goes before the (cached) keys.
    """

    config: T5Config
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, x_q: Array, x_kv: Array, bias: Array, prefix: dict | None = None) -> Array:
        """x_q [B, T_q, H], x_kv [B, T_k, H], additive bias [B|1, heads|1, T_q, T_k] -> [B, T_q, H]."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        inner = c.num_heads * c.d_kv
        project = functools.partial(Dense, inner, ("embed", "joined_kv"), dtype=dtype)
        query = project(init_std=(c.d_model * c.d_kv) ** -0.5, name="query")(x_q)
        key = project(init_std=c.d_model**-0.5, name="key")(x_kv)
        value = project(init_std=c.d_model**-0.5, name="value")(x_kv)
        split = lambda t: t.reshape(t.shape[:2] + (c.num_heads, c.d_kv))  # [B, T, heads, d_kv]
        query, key, value = split(query), split(key), split(value)
        if self.decode:
            key, value = self._update_cache(key, value)
        if prefix is not None:
            key, value, bias = prepend_prefix(key, value, bias, prefix)
        # Batched dots stay plain einsums: XLA:CPU runs some of their transposes outside
        # the fusions that take bfloat16 x bfloat16 -> float32 (jaxprompt.models.dots).
        scores = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32) + bias
        weights = jax.nn.softmax(scores, axis=-1).astype(dtype)
        weights = nn.Dropout(c.dropout_rate)(weights, deterministic=self.deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(x_q.shape[:2] + (inner,))
        out = nn.with_logical_constraint(out, ("batch", "length", "joined_kv"))
        return Dense(c.d_model, ("joined_kv", "embed"), (inner**-0.5), dtype=dtype, name="out")(out)

    def _update_cache(self, key: Array, value: Array) -> tuple[Array, Array]:
        initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if not initialized:  # The init call only allocates the cache.
            return key, value
        start = (0, index.value, 0, 0)
        cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key, start)
        cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
        index.value = index.value + key.shape[1]
        return cached_key.value, cached_value.value


class MlpBlock(nn.Module):
    """Feed-forward block: wo(act(wi(x))) or, gated, wo(act(wi_0(x)) * wi_1(x))."""

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        act = _activation(c)
        # The hidden activations in float32, rounded once after the gate (one pass fewer
        # over [B, T, d_ff] than rounding each projection).
        wi = functools.partial(
            Dense, c.d_ff, ("embed", "mlp"), c.d_model**-0.5, dtype=dtype, out_dtype=jnp.float32
        )
        if c.is_gated:
            h = act(wi(name="wi_0")(x)) * wi(name="wi_1")(x)
        else:
            h = act(wi(name="wi")(x))
        h = h.astype(dtype)
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        h = nn.Dropout(c.dropout_rate)(h, deterministic=self.deterministic)
        return Dense(c.d_model, ("mlp", "embed"), c.d_ff**-0.5, dtype=dtype, name="wo")(h)
