"""Residual prompt reparameterization: the MLP against numpy, training through
`jaxprompt train`, folding at save (scores and real PEFT), resume with the encoder."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxprompt.checkpoints import load_pretrained
from jaxprompt.cli.main import main
from jaxprompt.config import ConfigError
from jaxprompt.data.pipeline import encode_batch
from jaxprompt.data.vocabulary import vocabulary
from jaxprompt.evaluation.scoring import score_candidates
from jaxprompt.experiments.runs import RunSettings
from jaxprompt.prompts.artifact import INFO_FILE
from jaxprompt.prompts.reparam import PromptEncoderConfig, encode_prompt, fold, init_prompt_encoder
from tests.cli_helpers import assert_peft_logits_match, gin_flags, make_workdir

TEXTS = ["review: a truly great film", "review: dull and awful", "review: bad"]


def _numpy_encoder(prompt, p, layer_norm=True):
    hidden = np.maximum(prompt @ p["down"]["kernel"] + p["down"]["bias"], 0.0)
    out = hidden @ p["up"]["kernel"] + p["up"]["bias"]
    if layer_norm:
        out = (out - out.mean(-1, keepdims=True)) / np.sqrt(out.var(-1, keepdims=True) + 1e-5)
        out = out * p["norm"]["scale"] + p["norm"]["bias"]
    return prompt + out


@pytest.mark.parametrize("layer_norm", [True, False])
def test_residual_mlp_equals_numpy(layer_norm):
    config = PromptEncoderConfig(bottleneck=12, layer_norm=layer_norm)
    params = jax.tree.map(np.asarray, init_prompt_encoder(jax.random.key(3), 8, config))
    params = jax.tree.map(
        lambda x: x + np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 0.1, params
    )  # non-trivial scale and bias
    assert ("norm" in params) == layer_norm
    prompt = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(encode_prompt(prompt, params, config)),
        _numpy_encoder(prompt, params, layer_norm),
        atol=1e-5,
    )
    folded = fold({"prompt": prompt, "prompt_encoder": params}, config)
    assert set(folded) == {"prompt"}
    dropped = encode_prompt(
        prompt, params, PromptEncoderConfig(bottleneck=12, dropout=0.5), jax.random.key(0)
    )
    assert not np.allclose(np.asarray(dropped), np.asarray(encode_prompt(prompt, params, config)))


def test_bad_encoder_settings_are_refused():
    with pytest.raises(ConfigError, match="prompt_encoder_activation 'swish'"):
        RunSettings(prompt_encoder="residual_mlp", prompt_encoder_activation="swish")
    with pytest.raises(ConfigError, match="prompt_length is 0"):
        RunSettings(prompt_encoder="residual_mlp", prompt_length=0, deep_prompt_length=4)
    with pytest.raises(ConfigError, match="prompt_encoder 'lstm'"):
        RunSettings(prompt_encoder="lstm")


def _train(workdir, output_dir, steps, *extra):
    flags = gin_flags(
        workdir,
        "--gin_file=runs/residual_prompt_tuning.gin",
        "--gin.train.prompt_encoder_bottleneck=24",
        f"--gin.TrainerConfig.steps={steps}",
        "--gin.TrainerConfig.eval_every=2",
        "--gin.StepConfig.enable_dropout=False",
        *extra,
    )
    assert main(["train", *flags, f"--output_dir={output_dir}"]) == 0


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("residual"))
    _train(workdir, workdir / "run", 4)
    return workdir, workdir / "run"


def _restore(directory):
    """The orbax state as saved (the prompt and the encoder, unfolded)."""
    with ocp.CheckpointManager(directory.parent, item_names=("state", "meta")) as manager:
        restored = manager.restore(
            int(directory.name),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()),
        )
    return restored["state"]["trainable"]


@pytest.mark.slow
def test_folded_prompt_scores_equal_the_unfolded_model(residual_run):
    workdir, run = residual_run
    best = run / "best" / sorted(os.listdir(run / "best"))[-1]
    trainable = _restore(best)
    assert set(trainable) == {"prompt", "prompt_encoder"}
    assert trainable["prompt_encoder"]["down"]["kernel"].shape == (16, 24)
    folded = np.load(best / "prompt.npy")
    assert folded.shape == (5, 16)
    # The encoder was trained: the folded prompt is the raw prompt plus a learned residual.
    params = jax.tree.map(np.asarray, trainable["prompt_encoder"])
    np.testing.assert_allclose(
        folded, _numpy_encoder(np.asarray(trainable["prompt"]), params), atol=1e-5
    )
    config, frozen = load_pretrained(str(workdir / "model"))
    vocab = vocabulary()
    ids = encode_batch(vocab, TEXTS, 16)
    labels = encode_batch(vocab, ["negative", "positive"], 4)
    encoder = PromptEncoderConfig(bottleneck=24)
    from jaxprompt.training.step import forward

    batch = {"encoder_input_tokens": ids, "decoder_target_tokens": labels[:1].repeat(3, 0)}
    unfolded = forward(
        config, trainable, frozen, batch, prompt_mode="prefix", prompt_encoder=encoder
    )
    plain = forward(config, {"prompt": folded}, frozen, batch, prompt_mode="prefix")
    np.testing.assert_allclose(np.asarray(unfolded), np.asarray(plain), atol=1e-4)
    raw = forward(config, {"prompt": trainable["prompt"]}, frozen, batch, prompt_mode="prefix")
    assert not np.allclose(np.asarray(raw), np.asarray(plain), atol=1e-3)
    # What eval reads is the folded prompt; jaxprompt.json names the method.
    info = json.loads((best / INFO_FILE).read_text())
    assert info["method"] == "prompt_tuning with residual_mlp (folded)"
    assert info["trainable"] == {"prompt": [5, 16]}
    scores = score_candidates(config, frozen, folded, ids, labels)
    assert np.isfinite(np.asarray(scores)).all()


def test_the_folded_export_loads_in_real_peft_with_the_same_logits(residual_run):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    workdir, run = residual_run
    best = run / "best" / sorted(os.listdir(run / "best"))[-1]
    ids = encode_batch(vocabulary(), TEXTS, 16)
    assert_peft_logits_match(workdir / "model", best, ids, np.zeros((3, 2), np.int32))


@pytest.mark.slow
def test_a_resumed_residual_run_equals_an_uninterrupted_one(residual_run, tmp_path):
    workdir, run = residual_run
    _train(workdir, tmp_path / "resumed", 2)
    _train(workdir, tmp_path / "resumed", 4)
    resumed = _restore(tmp_path / "resumed" / "checkpoints" / "4")
    uninterrupted = _restore(run / "checkpoints" / "4")
    assert jax.tree.structure(resumed) == jax.tree.structure(uninterrupted)
    for ours, theirs in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # A plain run cannot resume a residual one: refused naming the setting.
    flags = gin_flags(workdir, "--gin.TrainerConfig.steps=6", "--gin.TrainerConfig.eval_every=2")
    assert main(["train", *flags, f"--output_dir={tmp_path / 'resumed'}"]) == 2


def test_a_zero_norm_scale_starts_the_residual_branch_at_zero():
    config = PromptEncoderConfig(bottleneck=12, norm_scale_init=0.0)
    params = init_prompt_encoder(jax.random.key(0), 8, config)
    prompt = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(encode_prompt(prompt, params, config)), prompt)
    # The default (the authors') does not: its branch is as large as a unit-variance row.
    default = PromptEncoderConfig(bottleneck=12)
    moved = (
        np.asarray(
            encode_prompt(prompt, init_prompt_encoder(jax.random.key(0), 8, default), default)
        )
        - prompt
    )
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), np.sqrt(8), rtol=1e-3)
