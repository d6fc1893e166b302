"""jaxprompt.T5 against itself: scanned vs per-layer, remat, KV-cache decoding, jit, dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprompt.models.scan import stack_layers, unstack_layers
from jaxprompt.models.t5 import T5, init_params, param_axes
from tests.helpers import tiny_config

TINY = tiny_config(
    vocab_size=64,
    d_model=12,
    num_heads=3,
    d_kv=5,
    d_ff=16,
    num_decoder_layers=3,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=10,
    dropout_rate=0.1,
)


@pytest.fixture(scope="module")
def params():
    return init_params(TINY, jax.random.key(0))


def _ids(seed=0, batch=2, enc=11, dec=7):
    rng = np.random.default_rng(seed)
    encoder_ids = rng.integers(2, TINY.vocab_size, size=(batch, enc))
    encoder_ids[1, 6:] = 0
    decoder_ids = rng.integers(2, TINY.vocab_size, size=(batch, dec))
    decoder_ids[:, 0] = 0
    return jnp.asarray(encoder_ids), jnp.asarray(decoder_ids)


@pytest.mark.slow
def test_scanned_layers_equal_per_layer(params):
    encoder_ids, decoder_ids = _ids()
    prompt = jax.random.normal(jax.random.key(1), (4, TINY.d_model))
    expected = T5(TINY).apply({"params": params}, encoder_ids, decoder_ids, prompt=prompt)
    scanned_config = TINY.replace(scan_layers=True)
    scanned = stack_layers(params, TINY)
    assert scanned["encoder"]["layers"]["mlp"]["wi_0"]["kernel"].shape == (2, 12, 16)
    got = T5(scanned_config).apply({"params": scanned}, encoder_ids, decoder_ids, prompt=prompt)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    # Scanned init has the same shapes, with the `layers` logical axis first.
    shapes = jax.eval_shape(lambda: init_params(scanned_config, jax.random.key(0)))
    assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(lambda x: x.shape, scanned)
    axes = param_axes(scanned_config)
    assert tuple(axes["encoder"]["layers"]["attention"]["query"]["kernel"]) == (
        "layers",
        "embed",
        "joined_kv",
    )
    roundtrip = unstack_layers(scanned, TINY)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), roundtrip, params))


@pytest.mark.parametrize("policy", ["full", "minimal"])
@pytest.mark.slow
def test_remat_keeps_values_and_prompt_gradients(params, policy):
    encoder_ids, decoder_ids = _ids()
    prompt = jax.random.normal(jax.random.key(1), (4, TINY.d_model))

    def loss(config, params, prompt):
        logits = T5(config).apply({"params": params}, encoder_ids, decoder_ids, prompt=prompt)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 3])

    for config, p in ((TINY, params), (TINY.replace(scan_layers=True), stack_layers(params, TINY))):
        remat = config.replace(remat_policy=policy)
        value, grad = jax.value_and_grad(loss, argnums=2)(config, p, prompt)
        value_r, grad_r = jax.value_and_grad(loss, argnums=2)(remat, p, prompt)
        np.testing.assert_allclose(value_r, value, rtol=1e-6)
        np.testing.assert_allclose(grad_r, grad, atol=1e-6)


def _decode_one_by_one(model, params, encoder_ids, decoder_ids, prompt):
    """Logits [B, S, V] decoded one position at a time against the KV cache."""
    encoded, mask = model.apply({"params": params}, encoder_ids, prompt=prompt, method=T5.encode)
    cache = model.init(
        jax.random.key(0), encoded, mask, decoder_ids, decode=True, method=T5.decode
    )["cache"]
    steps = []
    for t in range(decoder_ids.shape[1]):
        logits, mutated = model.apply(
            {"params": params, "cache": cache},
            encoded,
            mask,
            decoder_ids[:, t : t + 1],
            decode=True,
            method=T5.decode,
            mutable=["cache"],
        )
        cache = mutated["cache"]
        steps.append(logits)
    return jnp.concatenate(steps, axis=1)


def test_kv_cache_decoding_equals_full_forward(params):
    encoder_ids, decoder_ids = _ids(dec=6)
    model = T5(TINY)
    prompt = jax.random.normal(jax.random.key(2), (3, TINY.d_model))
    full = model.apply({"params": params}, encoder_ids, decoder_ids, prompt=prompt)
    np.testing.assert_allclose(
        _decode_one_by_one(model, params, encoder_ids, decoder_ids, prompt),
        full,
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.slow
def test_jit_and_dropout(params):
    encoder_ids, decoder_ids = _ids()
    model = T5(TINY)
    apply = jax.jit(lambda p, e, d: model.apply({"params": p}, e, d))
    np.testing.assert_allclose(
        apply(params, encoder_ids, decoder_ids),
        model.apply({"params": params}, encoder_ids, decoder_ids),
        atol=1e-5,
    )
    a = model.apply(
        {"params": params},
        encoder_ids,
        decoder_ids,
        enable_dropout=True,
        rngs={"dropout": jax.random.key(0)},
    )
    b = model.apply(
        {"params": params},
        encoder_ids,
        decoder_ids,
        enable_dropout=True,
        rngs={"dropout": jax.random.key(0)},
    )
    c = model.apply(
        {"params": params},
        encoder_ids,
        decoder_ids,
        enable_dropout=True,
        rngs={"dropout": jax.random.key(1)},
    )
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


def test_bad_prompt_shapes_are_refused(params):
    encoder_ids, decoder_ids = _ids()
    with pytest.raises(ValueError, match=r"prompt must be \[P, 12\].*got shape \(4, 7\)"):
        T5(TINY).apply({"params": params}, encoder_ids, decoder_ids, prompt=jnp.zeros((4, 7)))
    with pytest.raises(ValueError, match="per-example prompt has batch 3"):
        T5(TINY).apply({"params": params}, encoder_ids, decoder_ids, prompt=jnp.zeros((3, 4, 12)))


UMT5 = TINY.replace(relative_bias_per_layer=True)


def test_umt5_scanned_and_cached_equal_per_layer_full_forward():
    """UMT5's per-layer relative bias tables: under nn.scan (stacked, own logical axes) and
    with the KV cache, the same logits as per-layer layers and the full forward."""
    params = init_params(UMT5, jax.random.key(3))
    assert params["encoder"]["layers_1"]["relpos_bias"]["rel_embedding"].shape == (3, 8)
    assert "relpos_bias" not in params["encoder"] and "relpos_bias" not in params["decoder"]
    encoder_ids, decoder_ids = _ids(dec=6)
    prompt = jax.random.normal(jax.random.key(1), (4, UMT5.d_model))
    expected = T5(UMT5).apply({"params": params}, encoder_ids, decoder_ids, prompt=prompt)
    scanned_config = UMT5.replace(scan_layers=True)
    got = T5(scanned_config).apply(
        {"params": stack_layers(params, UMT5)}, encoder_ids, decoder_ids, prompt=prompt
    )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    axes = param_axes(scanned_config)
    assert tuple(axes["decoder"]["layers"]["relpos_bias"]["rel_embedding"]) == (
        "layers",
        "heads",
        "relpos_buckets",
    )
    model = T5(UMT5)
    np.testing.assert_allclose(
        _decode_one_by_one(model, params, encoder_ids, decoder_ids, prompt),
        expected,
        atol=1e-5,
        rtol=1e-5,
    )
