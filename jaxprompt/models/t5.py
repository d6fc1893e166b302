"""T5 encoder-decoder in flax.linen, numerically equal to transformers' T5.

Covers T5 1.0 (ReLU MLP, tied embeddings, logits scaled by H**-0.5), T5.1.1 /
LM-adapted T5.1.1 / mT5 (gated-GELU MLP, untied `logits_dense`), and UMT5
(`relative_bias_per_layer`: every self-attention layer has its own relative position table,
`layers_i/relpos_bias`, where T5 shares the first layer's). Parameter names follow
t5x/flaxformer (`token_embedder/embedding`, `encoder/layers_0/attention/query/kernel`,
`decoder/logits_dense/kernel`, ...) and every parameter carries logical axis names
(`vocab`, `embed`, `mlp`, `joined_kv`, `heads`, `relpos_buckets`, `layers`), so
`jaxprompt.partitioning` maps them onto any mesh without touching this file.

Shapes: B batch, T encoder length, S decoder length, P prompt length, H d_model,
K = num_heads * d_kv, V vocab. Padding id 0, EOS 1, decoder start id 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprompt.config import T5Config
from jaxprompt.models.combine import combine_prompt
from jaxprompt.models.layers import (
    Dense,
    Embed,
    MlpBlock,
    MultiHeadAttention,
    RelativePositionBias,
    RMSNorm,
    attention_bias,
    relative_position_buckets,
)
from jaxprompt.models.deep_prompt_spec import check_deep_prompt, layer_prefixes

Array = jax.Array


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and MLP with residuals.

    Scan-compatible: (x, bias, buckets, prefix) -> (x, None); `buckets` [T, T] (UMT5: the
    layer adds its own relative position bias) or None; `prefix` this layer's deep prompt.
    """

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(
        self, x: Array, bias: Array, buckets: Array | None = None, prefix: dict | None = None
    ) -> tuple[Array, None]:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        dropout = nn.Dropout(c.dropout_rate, deterministic=self.deterministic)
        if buckets is not None:
            bias = bias + RelativePositionBias(c, True, name="relpos_bias")(0, 0, buckets)
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
    def __call__(
        self,
        y: Array,
        self_bias: Array,
        buckets: Array | None,
        encoded: Array,
        cross_bias: Array,
        prefix: dict | None = None,
    ) -> tuple[Array, None]:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        dropout = nn.Dropout(c.dropout_rate, deterministic=self.deterministic)
        if buckets is not None:
            self_bias = self_bias + RelativePositionBias(c, False, name="relpos_bias")(
                0, 0, buckets
            )
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_self_attention_layer_norm")(y)
        h = MultiHeadAttention(c, self.deterministic, self.decode, name="self_attention")(
            h, h, self_bias, prefix
        )
        y = y + dropout(h)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_cross_attention_layer_norm")(y)
        h = MultiHeadAttention(c, self.deterministic, name="encoder_decoder_attention")(
            h, encoded, cross_bias
        )
        y = y + dropout(h)
        h = RMSNorm(c.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(y)
        y = y + dropout(MlpBlock(c, self.deterministic, name="mlp")(h))
        return nn.with_logical_constraint(y, ("batch", "length", "embed")), None


_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _run_layers(
    layer_cls,
    config: T5Config,
    num_layers: int,
    carry: Array,
    *broadcast,
    prefixes: dict | None = None,
    **layer_kwargs,
) -> Array:
    """Applies `num_layers` layers: named layers_i, or one scanned `layers` with a layer axis.

    `broadcast` arguments reach every layer whole; `prefixes` ([L, ...] leaves or None) are
    sliced along their first axis, layer i getting row i.
    """
    if config.remat_policy != "none":
        layer_cls = nn.remat(
            layer_cls,
            policy=_REMAT_POLICIES[config.remat_policy],
            prevent_cse=not config.scan_layers,
        )
    if config.scan_layers:
        stack = nn.scan(
            layer_cls,
            variable_axes={"params": 0, "cache": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=(nn.broadcast,) * len(broadcast) + (0,),
            length=num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )
        carry, _ = stack(config, name="layers", **layer_kwargs)(carry, *broadcast, prefixes)
        return carry
    for i in range(num_layers):
        layer_prefix = jax.tree.map(lambda t: t[i], prefixes)
        carry, _ = layer_cls(config, name=f"layers_{i}", **layer_kwargs)(
            carry, *broadcast, layer_prefix
        )
    return carry


class Encoder(nn.Module):
    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(
        self,
        input_ids: Array,
        prompt: Array | None = None,
        prompt_mask: Array | None = None,
        prompt_mode: str = "prefix",
        deterministic: bool = True,
        deep_prompt: dict | None = None,
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
        if c.relative_bias_per_layer:
            bias, buckets = (
                attention_bias(mask),
                relative_position_buckets(
                    length,
                    length,
                    True,
                    c.relative_attention_num_buckets,
                    c.relative_attention_max_distance,
                ),
            )
        else:
            bias = RelativePositionBias(c, bidirectional=True, name="relpos_bias")(
                length, length
            ) + attention_bias(mask)
            buckets = None
        x = _run_layers(
            EncoderLayer,
            c,
            c.num_layers,
            x,
            bias,
            buckets,
            prefixes=layer_prefixes(deep_prompt, "encoder"),
            deterministic=deterministic,
        )
        x = RMSNorm(c.layer_norm_epsilon, dtype, name="encoder_norm")(x)
        return nn.Dropout(c.dropout_rate)(x, deterministic=deterministic), mask


class Decoder(nn.Module):
    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(
        self,
        encoded: Array,
        encoder_mask: Array,
        decoder_input_ids: Array,
        deterministic: bool = True,
        decode: bool = False,
        deep_prompt: dict | None = None,
    ) -> Array:
        """encoded [B, T, H], encoder_mask [B, T], decoder_input_ids [B, S] -> logits [B, S, V].

        With `decode=True`, S is the number of new positions (usually 1) and positions come
        from the cache; the cache is created by an init call with the full target length.
        """
        c = self.config
        dtype = jnp.dtype(c.dtype)
        y = self.shared_embedding(decoder_input_ids)
        y = nn.Dropout(c.dropout_rate)(y, deterministic=deterministic)
        self_bias, buckets = self._self_attention_bias(decoder_input_ids.shape[1], decode)
        cross_bias = attention_bias(encoder_mask)
        y = _run_layers(
            DecoderLayer,
            c,
            c.num_decoder_layers,
            y,
            self_bias,
            buckets,
            encoded.astype(dtype),
            cross_bias,
            prefixes=layer_prefixes(deep_prompt, "decoder"),
            deterministic=deterministic,
            decode=decode,
        )
        y = RMSNorm(c.layer_norm_epsilon, dtype, name="decoder_norm")(y)
        y = nn.Dropout(c.dropout_rate)(y, deterministic=deterministic)
        if c.tie_word_embeddings:
            logits = self.shared_embedding.attend(y * (c.d_model**-0.5))
        else:
            logits = Dense(
                c.vocab_size, ("embed", "vocab"), c.d_model**-0.5, dtype=dtype, name="logits_dense"
            )(y)
        return nn.with_logical_constraint(logits.astype(jnp.float32), ("batch", "length", "vocab"))

    def _self_attention_bias(self, length: int, decode: bool) -> tuple[Array, Array | None]:
        """(bias, buckets): the causal mask plus the shared relative position bias,
        [1, heads, S, S] ([1, heads, S, S_max] cached), and None; with per-layer biases
        (UMT5) the mask alone and the buckets [S, S] ([S, S_max]) each layer looks up.

        In decode mode the cache holds the next position and `key_positions` [S_max], whose
        static shape gives the cache length; the init call allocates them (a cache of zeros
        of the same shapes works too).
        """
        c = self.config
        per_layer = c.relative_bias_per_layer
        relpos = (
            None if per_layer else RelativePositionBias(c, bidirectional=False, name="relpos_bias")
        )

        def buckets_of(rows: int) -> Array:
            return relative_position_buckets(
                rows,
                rows,
                False,
                c.relative_attention_num_buckets,
                c.relative_attention_max_distance,
            )

        if decode:
            initialized = self.has_variable("cache", "position")
            position = self.variable("cache", "position", lambda: jnp.zeros((), jnp.int32))
            key_positions = self.variable("cache", "key_positions", lambda: jnp.arange(length))
            if initialized:
                max_length = key_positions.value.shape[0]
                buckets = jax.lax.dynamic_slice_in_dim(
                    buckets_of(max_length), position.value, length, axis=0
                )  # [S, S_max]
                query_positions = position.value + jnp.arange(length)
                visible = jnp.arange(max_length)[None, :] <= query_positions[:, None]
                position.value = position.value + length
                mask = attention_bias(visible[None])
                if per_layer:
                    return mask, buckets
                return relpos(0, 0, buckets) + mask, None
        causal = attention_bias(jnp.tril(jnp.ones((length, length), dtype=bool))[None])
        if per_layer:
            return causal, buckets_of(length)
        return relpos(length, length) + causal, None


class T5(nn.Module):
    """T5 encoder-decoder with an optional soft prompt in front of the encoder inputs.

    `T5(config).apply({"params": params}, encoder_input_ids, decoder_input_ids, prompt=None)`
    returns float32 logits [B, S, V]. `deep_prompt` (see jaxprompt.prompts.deep) adds
    trainable keys and values to every encoder (and optionally decoder) self-attention.
    """

    config: T5Config

    def setup(self):
        c = self.config
        self.token_embedder = Embed(c.vocab_size, c.d_model, jnp.dtype(c.dtype))
        self.encoder = Encoder(c, self.token_embedder)
        self.decoder = Decoder(c, self.token_embedder)

    def encode(
        self,
        encoder_input_ids: Array,
        prompt: Array | None = None,
        prompt_mask: Array | None = None,
        prompt_mode: str = "prefix",
        enable_dropout: bool = False,
        deep_prompt: dict | None = None,
    ) -> tuple[Array, Array]:
        """encoder_input_ids [B, T], prompt [P, H] | [B, P, H] -> ([B, P + T, H], mask [B, P + T])."""
        if deep_prompt is not None:
            check_deep_prompt(deep_prompt, self.config)
        return self.encoder(
            encoder_input_ids,
            prompt,
            prompt_mask,
            prompt_mode,
            deterministic=not enable_dropout,
            deep_prompt=deep_prompt,
        )

    def decode(
        self,
        encoded: Array,
        encoder_mask: Array,
        decoder_input_ids: Array,
        enable_dropout: bool = False,
        decode: bool = False,
        deep_prompt: dict | None = None,
    ) -> Array:
        """Logits [B, S, V] for decoder_input_ids [B, S] (shifted targets, start id 0)."""
        return self.decoder(
            encoded,
            encoder_mask,
            decoder_input_ids,
            deterministic=not enable_dropout,
            decode=decode,
            deep_prompt=deep_prompt,
        )

    def __call__(
        self,
        encoder_input_ids: Array,
        decoder_input_ids: Array,
        prompt: Array | None = None,
        prompt_mask: Array | None = None,
        prompt_mode: str = "prefix",
        enable_dropout: bool = False,
        deep_prompt: dict | None = None,
    ) -> Array:
        encoded, mask = self.encode(
            encoder_input_ids, prompt, prompt_mask, prompt_mode, enable_dropout, deep_prompt
        )
        return self.decode(
            encoded, mask, decoder_input_ids, enable_dropout, deep_prompt=deep_prompt
        )


def init_params(config: T5Config, rng: Array, batch: int = 1, length: int = 8) -> dict:
    """Randomly initialised parameters (plain arrays, float32) for `config`."""
    ids = jnp.ones((batch, length), jnp.int32)
    variables = T5(config).init(rng, ids, ids)
    return nn.meta.unbox(variables["params"])


def param_axes(config: T5Config) -> dict:
    """The logical axis names of every parameter, as a tree of `PartitionSpec`s."""
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    abstract = jax.eval_shape(T5(config).init, jax.random.key(0), ids, ids)
    return nn.get_partition_spec(abstract)["params"]


def param_shapes(config: T5Config) -> dict:
    """Shapes and dtypes of every parameter (float32), without allocating anything."""
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    abstract = jax.eval_shape(T5(config).init, jax.random.key(0), ids, ids)
    return nn.meta.unbox(abstract["params"])
