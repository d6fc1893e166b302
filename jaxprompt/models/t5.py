"""T5 encoder-decoder in flax.linen, numerically equal to transformers' T5.

Covers T5 1.0 (ReLU MLP, tied embeddings, logits scaled by H**-0.5) and T5.1.1 /
LM-adapted T5.1.1 (gated-GELU MLP, untied `logits_dense`). Parameter names follow
t5x/flaxformer (`token_embedder/embedding`, `encoder/layers_0/attention/query/kernel`,
`decoder/logits_dense/kernel`, ...) and every parameter carries logical axis names
(`vocab`, `embed`, `mlp`, `joined_kv`, `heads`, `relpos_buckets`, `layers`), so
`jaxprompt.partitioning` maps them onto any mesh without touching this file.

Shapes: B batch, T encoder length, S decoder length, P prompt length, H d_model,
K = num_heads * d_kv, V vocab. Padding id 0, EOS 1, decoder start id 0.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.deep_prompts import check_deep_prompt, layer_prefixes
from jaxprompt.models.combine import combine_prompt

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


def relative_position_buckets(query_length: int, key_length: int, bidirectional: bool,
                              num_buckets: int, max_distance: int) -> np.ndarray:
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
    log_ratio = (np.log(np.maximum(distance, max_exact).astype(np.float32) / np.float32(max_exact))
                 / np.float32(np.log(max_distance / max_exact)))
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
            "embedding", nn.with_logical_partitioning(_normal(1.0), ("vocab", "embed")),
            (self.vocab_size, self.features), jnp.float32)

    def __call__(self, ids: Array) -> Array:
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: Array) -> Array:
        return jnp.einsum("...h,vh->...v", x, self.embedding.astype(self.dtype))


class Dense(nn.Module):
    """Bias-free projection [..., in] -> [..., features] with a logical-axes kernel."""

    features: int
    axes: tuple[str, str]
    init_std: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.with_logical_partitioning(_normal(self.init_std), self.axes),
                            (x.shape[-1], self.features), jnp.float32)
        return jnp.einsum("...i,io->...o", x.astype(self.dtype), kernel.astype(self.dtype))


class RMSNorm(nn.Module):
    """T5's layer norm: scale only, no mean subtraction, no bias; statistics in float32."""

    epsilon: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           (x.shape[-1],), jnp.float32)
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon)
        return (x * scale.astype(jnp.float32)).astype(self.dtype)


class RelativePositionBias(nn.Module):
    """Learned per-head bias for each relative-distance bucket: table [heads, buckets]."""

    config: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, query_length: int, key_length: int) -> Array:
        """Returns the bias [1, heads, T_q, T_k] in float32."""
        c = self.config
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(_normal(c.d_model ** -0.5), ("heads", "relpos_buckets")),
            (c.num_heads, c.relative_attention_num_buckets), jnp.float32)
        buckets = relative_position_buckets(query_length, key_length, self.bidirectional,
                                            c.relative_attention_num_buckets,
                                            c.relative_attention_max_distance)
        return jnp.take(table.astype(jnp.float32), buckets, axis=1)[None]


def prepend_prefix(key: Array, value: Array, bias: Array, prefix: dict
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
    return (jnp.concatenate([expand(prefix["key"]), key], axis=1),
            jnp.concatenate([expand(prefix["value"]), value], axis=1), bias)


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
    def __call__(self, x_q: Array, x_kv: Array, bias: Array, prefix: dict | None = None
                 ) -> Array:
        """x_q [B, T_q, H], x_kv [B, T_k, H], additive bias [B|1, heads|1, T_q, T_k] -> [B, T_q, H]."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        inner = c.num_heads * c.d_kv
        project = functools.partial(Dense, inner, ("embed", "joined_kv"), dtype=dtype)
        query = project(init_std=(c.d_model * c.d_kv) ** -0.5, name="query")(x_q)
        key = project(init_std=c.d_model ** -0.5, name="key")(x_kv)
        value = project(init_std=c.d_model ** -0.5, name="value")(x_kv)
        split = lambda t: t.reshape(t.shape[:2] + (c.num_heads, c.d_kv))  # [B, T, heads, d_kv]
        query, key, value = split(query), split(key), split(value)
        if self.decode:
            key, value = self._update_cache(key, value)
        if prefix is not None:
            key, value, bias = prepend_prefix(key, value, bias, prefix)
        scores = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32) + bias
        weights = jax.nn.softmax(scores, axis=-1).astype(dtype)
        weights = nn.Dropout(c.dropout_rate)(weights, deterministic=self.deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(x_q.shape[:2] + (inner,))
        out = nn.with_logical_constraint(out, ("batch", "length", "joined_kv"))
        return Dense(c.d_model, ("joined_kv", "embed"), (inner ** -0.5), dtype=dtype,
                     name="out")(out)

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
        wi = functools.partial(Dense, c.d_ff, ("embed", "mlp"), c.d_model ** -0.5, dtype=dtype)
        if c.is_gated:
            h = act(wi(name="wi_0")(x)) * wi(name="wi_1")(x)
        else:
            h = act(wi(name="wi")(x))
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        h = nn.Dropout(c.dropout_rate)(h, deterministic=self.deterministic)
        return Dense(c.d_model, ("mlp", "embed"), c.d_ff ** -0.5, dtype=dtype, name="wo")(h)


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and MLP with residuals.

    Scan-compatible: (x, bias, prefix) -> (x, None), `prefix` this layer's deep prompt or None.
    """

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, bias: Array, prefix: dict | None = None
                 ) -> tuple[Array, None]:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        dropout = nn.Dropout(c.dropout_rate, deterministic=self.deterministic)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_attention_layer_norm")(x)
        h = MultiHeadAttention(c, self.deterministic, name="attention")(h, h, bias, prefix)
        x = x + dropout(h)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(x)
        x = x + dropout(MlpBlock(c, self.deterministic, name="mlp")(h))
        return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention, MLP. Scan-compatible like EncoderLayer."""

    config: T5Config
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, y: Array, self_bias: Array, encoded: Array, cross_bias: Array,
                 prefix: dict | None = None) -> tuple[Array, None]:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        dropout = nn.Dropout(c.dropout_rate, deterministic=self.deterministic)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_self_attention_layer_norm")(y)
        h = MultiHeadAttention(c, self.deterministic, self.decode, name="self_attention")(
            h, h, self_bias, prefix)
        y = y + dropout(h)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_cross_attention_layer_norm")(y)
        h = MultiHeadAttention(c, self.deterministic, name="encoder_decoder_attention")(
            h, encoded, cross_bias)
        y = y + dropout(h)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(y)
        y = y + dropout(MlpBlock(c, self.deterministic, name="mlp")(h))
        return nn.with_logical_constraint(y, ("batch", "length", "embed")), None


_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _run_layers(layer_cls, config: T5Config, num_layers: int, carry: Array, *broadcast,
                prefixes: dict | None = None, **layer_kwargs) -> Array:
    """Applies `num_layers` layers: named layers_i, or one scanned `layers` with a layer axis.

    `broadcast` arguments reach every layer whole; `prefixes` ([L, ...] leaves or None) are
    sliced along their first axis, layer i getting row i.
    """
    if config.remat_policy != "none":
        layer_cls = nn.remat(layer_cls, policy=_REMAT_POLICIES[config.remat_policy],
                             prevent_cse=not config.scan_layers)
    if config.scan_layers:
        stack = nn.scan(layer_cls, variable_axes={"params": 0, "cache": 0},
                        split_rngs={"params": True, "dropout": True},
                        in_axes=(nn.broadcast,) * len(broadcast) + (0,), length=num_layers,
                        metadata_params={nn.PARTITION_NAME: "layers"})
        carry, _ = stack(config, name="layers", **layer_kwargs)(carry, *broadcast, prefixes)
        return carry
    for i in range(num_layers):
        layer_prefix = jax.tree.map(lambda t: t[i], prefixes)
        carry, _ = layer_cls(config, name=f"layers_{i}", **layer_kwargs)(carry, *broadcast,
                                                                         layer_prefix)
    return carry


class Encoder(nn.Module):
    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(self, input_ids: Array, prompt: Array | None = None,
                 prompt_mask: Array | None = None, prompt_mode: str = "prefix",
                 deterministic: bool = True, deep_prompt: dict | None = None
                 ) -> tuple[Array, Array]:
        """input_ids [B, T] -> (encoded [B, P + T, H], mask [B, P + T] bool)."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        x = self.shared_embedding(input_ids)
        mask = input_ids > 0
        if prompt is not None:
            x, mask = combine_prompt(x, mask, prompt, prompt_mask, prompt_mode)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        x = nn.Dropout(c.dropout_rate)(x, deterministic=deterministic)
        length = x.shape[1]
        bias = (RelativePositionBias(c, bidirectional=True, name="relpos_bias")(length, length)
                + attention_bias(mask))
        x = _run_layers(EncoderLayer, c, c.num_layers, x, bias,
                        prefixes=layer_prefixes(deep_prompt, "encoder"),
                        deterministic=deterministic)
        x = RMSNorm(c.layer_norm_epsilon, dtype, name="encoder_norm")(x)
        return nn.Dropout(c.dropout_rate)(x, deterministic=deterministic), mask


class Decoder(nn.Module):
    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(self, encoded: Array, encoder_mask: Array, decoder_input_ids: Array,
                 deterministic: bool = True, decode: bool = False,
                 deep_prompt: dict | None = None) -> Array:
        """encoded [B, T, H], encoder_mask [B, T], decoder_input_ids [B, S] -> logits [B, S, V].

        With `decode=True`, S is the number of new positions (usually 1) and positions come
        from the cache; the cache is created by an init call with the full target length.
        """
        c = self.config
        dtype = jnp.dtype(c.dtype)
        y = self.shared_embedding(decoder_input_ids)
        y = nn.Dropout(c.dropout_rate)(y, deterministic=deterministic)
        self_bias = self._self_attention_bias(decoder_input_ids.shape[1], decode)
        cross_bias = attention_bias(encoder_mask)
        y = _run_layers(DecoderLayer, c, c.num_decoder_layers, y, self_bias, encoded.astype(dtype),
                        cross_bias, prefixes=layer_prefixes(deep_prompt, "decoder"),
                        deterministic=deterministic, decode=decode)
        y = RMSNorm(c.layer_norm_epsilon, dtype, name="decoder_norm")(y)
        y = nn.Dropout(c.dropout_rate)(y, deterministic=deterministic)
        if c.tie_word_embeddings:
            logits = self.shared_embedding.attend(y * (c.d_model ** -0.5))
        else:
            logits = Dense(c.vocab_size, ("embed", "vocab"), c.d_model ** -0.5, dtype=dtype,
                           name="logits_dense")(y)
        return nn.with_logical_constraint(logits.astype(jnp.float32), ("batch", "length", "vocab"))

    def _self_attention_bias(self, length: int, decode: bool) -> Array:
        """Causal mask plus relative position bias: [1, heads, S, S] ([1, heads, S, S_max] cached).

        In decode mode the cache holds the next position and `key_positions` [S_max], whose
        static shape gives the cache length; the init call allocates them (a cache of zeros
        of the same shapes works too).
        """
        relpos = RelativePositionBias(self.config, bidirectional=False, name="relpos_bias")
        if decode:
            initialized = self.has_variable("cache", "position")
            position = self.variable("cache", "position", lambda: jnp.zeros((), jnp.int32))
            key_positions = self.variable("cache", "key_positions", lambda: jnp.arange(length))
            if initialized:
                max_length = key_positions.value.shape[0]
                full = relpos(max_length, max_length)  # [1, heads, S_max, S_max]
                bias = jax.lax.dynamic_slice_in_dim(full, position.value, length, axis=2)
                query_positions = position.value + jnp.arange(length)
                visible = jnp.arange(max_length)[None, :] <= query_positions[:, None]
                position.value = position.value + length
                return bias + attention_bias(visible[None])
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        return relpos(length, length) + attention_bias(causal[None])


class T5(nn.Module):
    """T5 encoder-decoder with an optional soft prompt in front of the encoder inputs.

    `T5(config).apply({"params": params}, encoder_input_ids, decoder_input_ids, prompt=None)`
    returns float32 logits [B, S, V]. `deep_prompt` (see jaxprompt.deep_prompts) adds
    trainable keys and values to every encoder (and optionally decoder) self-attention.
    """

    config: T5Config

    def setup(self):
        c = self.config
        self.token_embedder = Embed(c.vocab_size, c.d_model, jnp.dtype(c.dtype))
        self.encoder = Encoder(c, self.token_embedder)
        self.decoder = Decoder(c, self.token_embedder)

    def encode(self, encoder_input_ids: Array, prompt: Array | None = None,
               prompt_mask: Array | None = None, prompt_mode: str = "prefix",
               enable_dropout: bool = False, deep_prompt: dict | None = None
               ) -> tuple[Array, Array]:
        """encoder_input_ids [B, T], prompt [P, H] | [B, P, H] -> ([B, P + T, H], mask [B, P + T])."""
        if deep_prompt is not None:
            check_deep_prompt(deep_prompt, self.config)
        return self.encoder(encoder_input_ids, prompt, prompt_mask, prompt_mode,
                            deterministic=not enable_dropout, deep_prompt=deep_prompt)

    def decode(self, encoded: Array, encoder_mask: Array, decoder_input_ids: Array,
               enable_dropout: bool = False, decode: bool = False,
               deep_prompt: dict | None = None) -> Array:
        """Logits [B, S, V] for decoder_input_ids [B, S] (shifted targets, start id 0)."""
        return self.decoder(encoded, encoder_mask, decoder_input_ids,
                            deterministic=not enable_dropout, decode=decode,
                            deep_prompt=deep_prompt)

    def __call__(self, encoder_input_ids: Array, decoder_input_ids: Array,
                 prompt: Array | None = None, prompt_mask: Array | None = None,
                 prompt_mode: str = "prefix", enable_dropout: bool = False,
                 deep_prompt: dict | None = None) -> Array:
        encoded, mask = self.encode(encoder_input_ids, prompt, prompt_mask, prompt_mode,
                                    enable_dropout, deep_prompt)
        return self.decode(encoded, mask, decoder_input_ids, enable_dropout,
                           deep_prompt=deep_prompt)


def init_params(config: T5Config, rng: Array, batch: int = 1, length: int = 8) -> dict:
    """Randomly initialised parameters (plain arrays, float32) for `config`."""
    ids = jnp.ones((batch, length), jnp.int32)
    variables = T5(config).init(rng, ids, ids)
    return nn.meta.unbox(variables["params"])


def logical_axes(config: T5Config) -> dict:
    """The logical axis names of every parameter, as a tree of `PartitionSpec`s."""
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    abstract = jax.eval_shape(T5(config).init, jax.random.key(0), ids, ids)
    return nn.get_partition_spec(abstract)["params"]


def param_shapes(config: T5Config) -> dict:
    """Shapes and dtypes of every parameter (float32), without allocating anything."""
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    abstract = jax.eval_shape(T5(config).init, jax.random.key(0), ids, ids)
    return nn.meta.unbox(abstract["params"])
