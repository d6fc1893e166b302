"""Deep prompts (prefix tuning): attention against numpy, exact no-op at length 0, scanned ==
per-layer, cached decoding == full forward, training moves only the prefixes."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train_helpers import TINY, run_steps, synthetic_batch, synthetic_batches, tiny_frozen

from jaxprompt import evaluation, partitioning
from jaxprompt.prompts import deep as deep_prompts
from jaxprompt.training import optimizers, step as train
from jaxprompt.models.scan import stack_layers
from jaxprompt.models.layers import MultiHeadAttention
from jaxprompt.models.t5 import T5
from jaxprompt.training.loop import TrainerConfig
from jaxprompt.training.loop import train as run_training

ENCODER_IDS = jnp.array([[5, 6, 7, 8, 1, 0, 0], [9, 10, 11, 12, 13, 14, 1]], jnp.int32)
DECODER_IDS = jnp.array([[0, 4, 5], [0, 6, 7]], jnp.int32)


def _numpy_attention(params, x, bias, prefix_key, prefix_value, heads, d_kv):
    """Multi-head attention with prefix keys/values, written out in float64 numpy."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.asarray(x, np.float64)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, d_kv)
    q = split(x @ p["query"]["kernel"])
    k, v = split(x @ p["key"]["kernel"]), split(x @ p["value"]["kernel"])
    batch, length = x.shape[:2]
    prefix = lambda t: np.broadcast_to(
        np.asarray(t, np.float64).reshape(1, -1, heads, d_kv), (batch, t.shape[0], heads, d_kv)
    )
    k = np.concatenate([prefix(prefix_key), k], axis=1)
    v = np.concatenate([prefix(prefix_value), v], axis=1)
    full_bias = np.concatenate(
        [np.zeros((batch, heads, length, prefix_key.shape[0])), np.asarray(bias, np.float64)],
        axis=-1,
    )
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) + full_bias
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, heads * d_kv)
    return out @ p["out"]["kernel"]


def test_prefix_attention_matches_numpy_reference():
    x = jax.random.normal(jax.random.key(0), (2, 5, TINY.d_model))
    causal = np.tril(np.ones((5, 5), bool))
    bias = np.where(causal, 0.0, -1e9)[None, None] + np.asarray(
        jax.random.normal(jax.random.key(1), (2, TINY.num_heads, 5, 5))
    )
    inner = TINY.num_heads * TINY.d_kv
    prefix = {
        "key": jax.random.normal(jax.random.key(2), (3, inner)),
        "value": jax.random.normal(jax.random.key(3), (3, inner)),
    }
    attention = MultiHeadAttention(TINY)
    params = attention.init(jax.random.key(4), x, x, jnp.asarray(bias, jnp.float32), prefix)
    got = attention.apply(params, x, x, jnp.asarray(bias, jnp.float32), prefix)
    expected = _numpy_attention(
        jax.tree.map(
            lambda a: a.unbox() if hasattr(a, "unbox") else a,
            params["params"],
            is_leaf=lambda a: hasattr(a, "unbox"),
        ),
        x,
        bias,
        prefix["key"],
        prefix["value"],
        TINY.num_heads,
        TINY.d_kv,
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.slow
def test_length_zero_deep_prompt_reproduces_the_bare_model_exactly(scan):
    params = tiny_frozen()
    config = TINY
    if scan:
        config, params = TINY.replace(scan_layers=True), stack_layers(params, TINY)
    model = T5(config)
    deep = deep_prompts.init_deep_prompt(jax.random.key(1), params, config, 4, decoder=True)
    empty = jax.tree.map(lambda a: a[:, :0], deep)
    prompt = jax.random.normal(jax.random.key(2), (3, config.d_model))
    for input_prompt in (None, prompt):
        bare = model.apply({"params": params}, ENCODER_IDS, DECODER_IDS, prompt=input_prompt)
        with_empty = model.apply(
            {"params": params}, ENCODER_IDS, DECODER_IDS, prompt=input_prompt, deep_prompt=empty
        )
        np.testing.assert_array_equal(np.asarray(with_empty), np.asarray(bare))
        with_deep = model.apply(
            {"params": params}, ENCODER_IDS, DECODER_IDS, prompt=input_prompt, deep_prompt=deep
        )
        assert np.abs(np.asarray(with_deep) - np.asarray(bare)).max() > 1e-2


def test_scanned_and_per_layer_agree_with_a_deep_prompt():
    params = tiny_frozen()
    deep = deep_prompts.init_deep_prompt(jax.random.key(1), params, TINY, 4, decoder=True)
    scanned_config = TINY.replace(scan_layers=True)
    scanned = stack_layers(params, TINY)
    # The init projects through each layer's own kernels: the layouts give the same prefixes.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
        deep,
        deep_prompts.init_deep_prompt(jax.random.key(1), scanned, scanned_config, 4, decoder=True),
    )
    per_layer = T5(TINY).apply({"params": params}, ENCODER_IDS, DECODER_IDS, deep_prompt=deep)
    stacked = T5(scanned_config).apply(
        {"params": scanned}, ENCODER_IDS, DECODER_IDS, deep_prompt=deep
    )
    np.testing.assert_allclose(np.asarray(stacked), np.asarray(per_layer), rtol=1e-5, atol=1e-5)


def test_init_is_each_layers_key_and_value_of_sampled_tokens():
    params = tiny_frozen()
    deep = deep_prompts.init_deep_prompt(jax.random.key(7), params, TINY, 5)
    assert set(deep) == {"encoder_key", "encoder_value"}
    assert deep["encoder_key"].shape == (TINY.num_layers, 5, TINY.num_heads * TINY.d_kv)
    # Recompute layer 1's key from scratch: the rows must be some vocabulary tokens' keys.
    layer = params["encoder"]["layers_1"]
    embedding = np.asarray(params["token_embedder"]["embedding"], np.float64)
    normed = embedding / np.sqrt((embedding**2).mean(-1, keepdims=True) + TINY.layer_norm_epsilon)
    all_keys = (normed * np.asarray(layer["pre_attention_layer_norm"]["scale"])) @ np.asarray(
        layer["attention"]["key"]["kernel"], np.float64
    )  # [V, K]
    distance = np.abs(np.asarray(deep["encoder_key"][1])[:, None] - all_keys[None]).max(-1)
    assert (distance.min(axis=1) < 1e-4).all()
    assert (distance.argmin(axis=1) >= 3).all()  # never pad / eos / unk


@pytest.mark.slow
def test_cached_greedy_decoding_equals_full_forward_with_decoder_prefixes():
    params = tiny_frozen()
    deep = deep_prompts.init_deep_prompt(jax.random.key(3), params, TINY, 3, decoder=True)
    max_length = 5
    cached = np.asarray(
        evaluation.greedy_decode(TINY, params, {"deep_prompt": deep}, ENCODER_IDS, max_length)
    )
    # Reference: greedy search that reruns the full (uncached) forward at every position.
    tokens = np.zeros((2, max_length), np.int32)
    done = np.zeros(2, bool)
    for i in range(max_length):
        decoder_inputs = np.concatenate([np.zeros((2, 1), np.int32), tokens[:, :i]], axis=1)
        logits = T5(TINY).apply(
            {"params": params}, ENCODER_IDS, jnp.asarray(decoder_inputs), deep_prompt=deep
        )
        token = np.where(done, 0, np.asarray(logits[:, -1]).argmax(-1))
        tokens[:, i] = token
        done |= token == 1
    np.testing.assert_array_equal(cached, tokens)


def test_bad_deep_prompt_names_key_and_shape():
    params = tiny_frozen()
    deep = deep_prompts.init_deep_prompt(jax.random.key(1), params, TINY, 4)
    deep["encoder_value"] = deep["encoder_value"][:, :, :8]
    with pytest.raises(deep_prompts.DeepPromptError, match=r"encoder_value.*\(2, 4, 16\)"):
        T5(TINY).apply({"params": params}, ENCODER_IDS, DECODER_IDS, deep_prompt=deep)
    with pytest.raises(deep_prompts.DeepPromptError, match="positive"):
        deep_prompts.init_deep_prompt(jax.random.key(1), params, TINY, 0)


@pytest.mark.slow
def test_training_moves_only_the_deep_prompt_sharded_over_the_model_axis():
    frozen_host = tiny_frozen()
    reference = jax.tree.map(np.array, frozen_host)
    deep = deep_prompts.init_deep_prompt(jax.random.key(1), frozen_host, TINY, 4, decoder=True)
    initial = jax.tree.map(np.array, deep)
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    state = train.init_train_state({"deep_prompt": deep}, optimizer, seed=0)
    steps = train.shard_steps(TINY, optimizer, train.StepConfig(), state, partitioning.make_mesh())
    assert steps.state_shardings.trainable["deep_prompt"][
        "encoder_key"
    ].spec == jax.sharding.PartitionSpec(None, None, "model")
    frozen = jax.device_put(frozen_host, steps.frozen_shardings)
    state = jax.device_put(state, steps.state_shardings)
    state, losses = run_steps(steps, state, frozen, 6)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, frozen), reference)
    assert set(state.trainable) == {"deep_prompt"}
    for name, before in initial.items():
        assert np.abs(np.asarray(state.trainable["deep_prompt"][name]) - before).max() > 1e-4
    frozen_shapes = {tuple(x.shape) for x in jax.tree.leaves(reference) if x.ndim >= 2}
    state_shapes = {tuple(x.shape) for x in jax.tree.leaves(state.opt_state)}
    assert not state_shapes & frozen_shapes, state_shapes & frozen_shapes
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_trainer_writes_and_resumes_deep_prompt_files(tmp_path):
    frozen = tiny_frozen()
    deep = deep_prompts.init_deep_prompt(jax.random.key(1), frozen, TINY, 2)
    prompt = jax.random.uniform(jax.random.key(5), (3, TINY.d_model), minval=-0.5, maxval=0.5)

    def run(steps):
        return run_training(
            model_config=TINY,
            frozen_params=frozen,
            trainable={"prompt": prompt, "deep_prompt": deep},
            train_batches=synthetic_batches,
            output_dir=str(tmp_path),
            eval_batches=lambda: [synthetic_batch(100)],
            trainer_config=TrainerConfig(steps=steps, eval_every=2, progress=False),
        )

    run(2)
    result = run(4)  # resumes at step 2
    assert result.step == 4
    saved = deep_prompts.load_deep_prompt(result.best_deep_prompt_path, TINY)
    assert os.path.exists(result.best_prompt_path)
    latest = deep_prompts.load_deep_prompt(
        str(tmp_path / "checkpoints" / "4" / deep_prompts.DEEP_PROMPT_FILE), TINY
    )
    jax.tree.map(
        np.testing.assert_array_equal,
        latest,
        jax.tree.map(np.asarray, result.state.trainable["deep_prompt"]),
    )
    assert set(saved) == {"encoder_key", "encoder_value"}
    with open(tmp_path / "model_info.json") as f:
        assert json.load(f)["deep_prompt_shapes"]["encoder_key"] == [2, 2, 16]
