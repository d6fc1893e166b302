"""A decoder-only transformer LM in flax.linen: Gemma 3 and the Llama family (Llama 3,
Qwen 2.5, Qwen 3) through one module and the switches of `DecoderConfig`.

The module works on embeddings, so a soft prompt is placed by the caller
(`jaxprompt.models.causal`): `embed(ids)` [B, T] -> [B, T, H]; `hidden(x, positions,
key_mask)` runs the layers and the final norm; `logits(h)` applies the LM head only where
it is asked to (with a 262,144-row head, every position costs more than the layers).

Parameter names: `token_embedder/embedding` [V, H], under `decoder/`:
`layers_i/attention/{query,key,value,out}/kernel` (`bias` with Qwen 2),
`layers_i/attention/{query_norm,key_norm}/scale` [D], `layers_i/{pre_attention_norm,
post_attention_norm,pre_mlp_norm,post_mlp_norm}/scale`, `layers_i/mlp/{gate,up,down}/kernel`,
`final_norm/scale`; `lm_head/kernel` [H, V] when untied. Under `scan_layers` one
`decoder/layers` with a leading [L] axis. Every parameter carries
logical axes. Shapes: B batch, T query length, S key length, H d_model, N query heads,
K key/value heads, G = N / K, D head width, V vocabulary.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.models.dots import einsum
from jaxprompt.models.layers import Embed

Array = jax.Array
NEG_INF = float(np.finfo(np.float32).min)


class Projection(nn.Module):
    """[..., in] -> [..., features], with an optional bias."""

    features: int
    axes: tuple[str, str]
    dtype: jnp.dtype
    use_bias: bool = False
    out_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), self.axes),
            (x.shape[-1], self.features),
            jnp.float32,
        )
        y = einsum("...i,io->...o", x.astype(self.dtype), kernel.astype(self.dtype), self.out_dtype)
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(nn.initializers.zeros, self.axes[1:]),
                (self.features,),
                jnp.float32,
            )
            y = y + bias.astype(y.dtype)
        return y


class Norm(nn.Module):
    """RMS norm in float32; Gemma's scales by (1 + w), the Llama family's by w."""

    epsilon: float
    plus_one: bool
    dtype: jnp.dtype
    axis_name: str = "embed"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = nn.initializers.zeros if self.plus_one else nn.initializers.ones
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(init, (self.axis_name,)),
            (x.shape[-1],),
            jnp.float32,
        )
        h = x.astype(jnp.float32)
        h = h * jax.lax.rsqrt(jnp.mean(jnp.square(h), axis=-1, keepdims=True) + self.epsilon)
        if self.plus_one:
            return (h * (1.0 + scale)).astype(self.dtype)
        return (scale * h.astype(self.dtype)).astype(self.dtype)  # Llama: w * x.to(dtype)


def rope_frequencies(config: DecoderConfig, kind: str) -> np.ndarray:
    """Inverse frequencies [D / 2] of a layer kind ("global" or "sliding"), float32."""
    theta = config.rope_theta
    if kind == "sliding" and config.rope_local_theta is not None:
        theta = config.rope_local_theta
    dim = config.head_dim
    inv = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
    scaling = config.rope_scaling if kind == "global" else None
    if scaling is None:
        return inv.astype(np.float32)
    if scaling[0] == "linear":
        return (inv / scaling[1]).astype(np.float32)
    _, factor, low, high, original = scaling
    wavelength = 2 * np.pi / inv
    low_wavelength, high_wavelength = original / low, original / high
    scaled = np.where(wavelength > low_wavelength, inv / factor, inv)
    smooth = (original / wavelength - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(config: DecoderConfig, positions: Array, kind: str) -> tuple[Array, Array]:
    """cos, sin [B, T, D] for positions [B, T] (rotate-half layout, as transformers)."""
    inv = jnp.asarray(rope_frequencies(config, kind))
    angles = positions.astype(jnp.float32)[..., None] * inv  # [B, T, D / 2]
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """x [B, T, heads, D] rotated by cos, sin [B, T, D]."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[:, :, None].astype(x.dtype), sin[:, :, None].astype(x.dtype)
    return x * cos + rotated * sin


def attention_bias(
    query_index: Array, query_positions: Array, key_mask: Array, window: int | None
) -> Array:
    """Additive causal bias [B, 1, T, S]: query slots [B, T] (their index among the S key
    slots) see the slots up to their own where key_mask [B, S] holds; with `window`, only
    keys less than `window` positions back (positions count real tokens, so padding
    between a shared prefix and a row's text does not shorten the window; on contiguous
    sequences this is transformers' key > query - window)."""
    keys = jnp.arange(key_mask.shape[1])[None, None, :]
    visible = (keys <= query_index[:, :, None]) & key_mask[:, None, :]
    if window is not None:
        key_positions = jnp.cumsum(key_mask, axis=1) - 1  # [B, S]
        visible = visible & (key_positions[:, None, :] > query_positions[:, :, None] - window)
    return jnp.where(visible, 0.0, NEG_INF)[:, None].astype(jnp.float32)


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE, optional QK-norm and a KV cache."""

    config: DecoderConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x: Array, cos: Array, sin: Array, bias: Array, index) -> Array:
        """x [B, T, H], cos/sin [B, T, D], bias [B, 1, T, S] -> [B, T, H]; `index` the
        cache slot of the first query (decode mode)."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        n, k, d = c.num_heads, c.num_kv_heads, c.head_dim
        project = functools.partial(
            Projection, axes=("embed", "joined_kv"), dtype=dtype, use_bias=c.qkv_bias
        )
        batch, length = x.shape[:2]
        query = project(n * d, name="query")(x).reshape(batch, length, n, d)
        key = project(k * d, name="key")(x).reshape(batch, length, k, d)
        value = project(k * d, name="value")(x).reshape(batch, length, k, d)
        if c.qk_norm:
            norm = functools.partial(Norm, c.rms_norm_eps, c.norm_plus_one, dtype, "kv")
            query, key = norm(name="query_norm")(query), norm(name="key_norm")(key)
        query, key = apply_rope(query, cos, sin), apply_rope(key, cos, sin)
        if self.decode:
            key, value = self._update_cache(key, value, index)
        scale = c.query_scale if c.query_scale is not None else d**-0.5
        query = query.reshape(batch, length, k, n // k, d) * jnp.asarray(scale, dtype)
        scores = jnp.einsum("btkgd,bskd->bkgts", query, key).astype(jnp.float32)
        weights = jax.nn.softmax(scores + bias[:, :, None], axis=-1).astype(dtype)
        out = jnp.einsum("bkgts,bskd->btkgd", weights, value).reshape(batch, length, n * d)
        out = nn.with_logical_constraint(out, ("batch", "length", "joined_kv"))
        return Projection(c.d_model, ("joined_kv", "embed"), dtype, name="out")(out)

    def _update_cache(self, key: Array, value: Array, index) -> tuple[Array, Array]:
        initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        if not initialized:  # the init call allocates the cache at its full length
            return key, value
        start = (0, index, 0, 0)
        cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key, start)
        cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
        return cached_key.value, cached_value.value


class Mlp(nn.Module):
    """Gated MLP: down(act(gate(x)) * up(x)); GeGLU (tanh GELU) or SwiGLU."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        act = (
            jax.nn.silu
            if c.activation == "silu"
            else functools.partial(jax.nn.gelu, approximate=True)
        )
        wide = functools.partial(Projection, c.d_ff, ("embed", "mlp"), dtype, out_dtype=jnp.float32)
        h = (act(wide(name="gate")(x)) * wide(name="up")(x)).astype(dtype)
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        return Projection(c.d_model, ("mlp", "embed"), dtype, name="down")(h)


class Block(nn.Module):
    """One layer; scan-compatible: (x, context, own) -> (x, None), `own` = {"sliding": bool}
    (a scanned [L] array under nn.scan) and `context` the cos/sin tables and biases of both
    layer kinds, shared by every layer."""

    config: DecoderConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x: Array, context: dict, own: dict) -> tuple[Array, None]:
        c = self.config
        dtype = jnp.dtype(c.dtype)
        norm = functools.partial(Norm, c.rms_norm_eps, c.norm_plus_one, dtype)
        pick = lambda name: jnp.where(
            own["sliding"], context["sliding"][name], context["global"][name]
        )
        cos, sin, bias = pick("cos"), pick("sin"), pick("bias")
        h = norm(name="pre_attention_norm")(x)
        h = Attention(c, self.decode, name="attention")(h, cos, sin, bias, context["index"])
        if c.sandwich_norms:
            h = norm(name="post_attention_norm")(h)
        x = x + h
        h = Mlp(c, name="mlp")(norm(name="pre_mlp_norm")(x))
        if c.sandwich_norms:
            h = norm(name="post_mlp_norm")(h)
        return nn.with_logical_constraint(x + h, ("batch", "length", "embed")), None


_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Stack(nn.Module):
    """The layers and the final norm: x [B, T, H] -> hidden states [B, T, H]."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: Array, positions: Array, key_mask: Array, decode: bool = False) -> Array:
        c = self.config
        batch, length = x.shape[:2]
        index = jnp.zeros((), jnp.int32)
        query_index = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
        if decode:
            initialized = self.has_variable("cache", "index")
            slot = self.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
            if initialized:
                index = slot.value
                query_index = query_index + index
                slot.value = index + length
        context = {"index": index}
        for kind in ("global", "sliding"):
            cos, sin = rope_tables(c, positions, kind)
            window = c.sliding_window if kind == "sliding" else None
            context[kind] = {
                "cos": cos,
                "sin": sin,
                "bias": attention_bias(query_index, positions, key_mask.astype(bool), window),
            }
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        sliding = np.array([k == "sliding" for k in c.layer_kinds])
        block = Block
        if c.remat_policy != "none":
            block = nn.remat(
                block, policy=_REMAT_POLICIES[c.remat_policy], prevent_cse=not c.scan_layers
            )
        if c.scan_layers:
            stack = nn.scan(
                block,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, 0),
                length=c.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, _ = stack(c, decode, name="layers")(x, context, {"sliding": jnp.asarray(sliding)})
        else:
            for i in range(c.num_layers):
                x, _ = block(c, decode, name=f"layers_{i}")(
                    x, context, {"sliding": bool(sliding[i])}
                )
        return Norm(c.rms_norm_eps, c.norm_plus_one, jnp.dtype(c.dtype), name="final_norm")(x)


class DecoderLM(nn.Module):
    """Decoder-only LM. `__call__(ids)` gives logits [B, T, V] (tests and plain use); the
    prompt-tuning path calls `embed`, `hidden` and `logits` (jaxprompt.models.causal)."""

    config: DecoderConfig

    def setup(self):
        c = self.config
        self.token_embedder = Embed(c.vocab_size, c.d_model, jnp.dtype(c.dtype))
        self.decoder = Stack(c)
        if not c.tie_word_embeddings:
            self.lm_head = Projection(c.vocab_size, ("embed", "vocab"), jnp.dtype(c.dtype))

    def embed(self, ids: Array) -> Array:
        """ids [B, T] -> [B, T, H] in the compute dtype (times sqrt(H) for Gemma)."""
        x = self.token_embedder(ids)
        if self.config.scale_embeddings:
            x = x * jnp.asarray(self.config.d_model**0.5, x.dtype)
        return x

    def hidden(self, x: Array, positions: Array, key_mask: Array, decode: bool = False) -> Array:
        """x [B, T, H] -> final-normed hidden states [B, T, H].

        positions [B, T] (RoPE); key_mask [B, T] (False: padding, never attended). With
        `decode`, key_mask is [B, S_max] over the whole cache (allocated by an init call at
        S_max) and x holds the next T positions, written at the cache's index.
        """
        return self.decoder(x, positions, key_mask, decode)

    def logits(self, h: Array) -> Array:
        """h [..., H] -> float32 logits [..., V]."""
        if self.config.tie_word_embeddings:
            logits = self.token_embedder.attend(h)
        else:
            logits = self.lm_head(h)
        return logits.astype(jnp.float32)

    def __call__(self, ids: Array, key_mask: Array | None = None) -> Array:
        """ids [B, T] (left-padded where key_mask is False) -> logits [B, T, V]."""
        key_mask = jnp.ones(ids.shape, bool) if key_mask is None else key_mask.astype(bool)
        positions = jnp.maximum(jnp.cumsum(key_mask, axis=1) - 1, 0)
        return self.logits(self.hidden(self.embed(ids), positions, key_mask))


def init_params(config: DecoderConfig, rng: Array, length: int = 8) -> dict:
    """Randomly initialised parameters (float32) for `config`."""
    variables = DecoderLM(config).init(rng, jnp.ones((1, length), jnp.int32))
    return nn.meta.unbox(variables["params"])


def _abstract(config: DecoderConfig):
    ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
    return jax.eval_shape(DecoderLM(config).init, jax.random.key(0), ids)["params"]


def param_axes(config: DecoderConfig) -> dict:
    """The logical axis names of every parameter, as a tree of PartitionSpecs."""
    return nn.get_partition_spec(_abstract(config))


def param_shapes(config: DecoderConfig) -> dict:
    """Shapes and dtypes (float32) of every parameter, allocating nothing."""
    return nn.meta.unbox(_abstract(config))
