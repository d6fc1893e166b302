"""Prompt tuning invariants: frozen weights untouched, no weight gradients, sharding, resume."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import REPO
from tests.train_helpers import TINY, run_steps, synthetic_batch, synthetic_batches, tiny_frozen
from tests.train_worker import three_steps, trainer_run

from jaxprompt import partitioning
from jaxprompt.training import optimizers, step as train
from jaxprompt.checkpoints import CheckpointError
from jaxprompt.prompts.deep import load_deep_prompt
from jaxprompt.models.t5 import T5, init_params
from jaxprompt.training.loop import TrainerConfig, TrainingError
from jaxprompt.training.loop import train as run_training


def _setup(prompt_length=6):
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    prompt = jax.random.uniform(
        jax.random.key(5), (prompt_length, TINY.d_model), minval=-0.5, maxval=0.5
    )
    state = train.init_train_state({"prompt": prompt}, optimizer, seed=0)
    steps = train.shard_steps(TINY, optimizer, train.StepConfig(), state, partitioning.make_mesh())
    return optimizer, state, steps


@pytest.mark.slow
def test_frozen_weights_bit_identical_prompt_moves_state_is_prompt_only():
    frozen_host = tiny_frozen()
    reference = jax.tree.map(np.array, frozen_host)
    _, state, steps = _setup()
    initial_prompt = np.array(state.trainable["prompt"])
    frozen = jax.device_put(frozen_host, steps.frozen_shardings)
    state, losses = run_steps(steps, state, frozen, 8)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, frozen), reference)
    assert np.abs(np.asarray(state.trainable["prompt"]) - initial_prompt).max() > 1e-3
    frozen_shapes = {tuple(x.shape) for x in jax.tree.leaves(reference) if x.ndim >= 1}
    state_shapes = {tuple(x.shape) for x in jax.tree.leaves(state.opt_state)}
    assert not (state_shapes - {(6, TINY.d_model), (1,), ()}), state_shapes
    assert (TINY.vocab_size, TINY.d_model) in frozen_shapes
    assert not state_shapes & (frozen_shapes - {(TINY.d_model,)})
    assert losses[-1] < losses[0]


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


@pytest.mark.slow
def test_prompt_step_computes_no_weight_gradients():
    # Wide enough that weight matmuls, not softmax or the logits, dominate the FLOPs.
    config = TINY.replace(d_model=128, num_heads=4, d_kv=32, d_ff=512, vocab_size=256)
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    frozen = init_params(config, jax.random.key(0))
    prompt = jnp.zeros((4, config.d_model))
    state = train.init_train_state({"prompt": prompt}, optimizer, seed=0)
    step_config = train.StepConfig()
    steps = train.shard_steps(config, optimizer, step_config, state, partitioning.make_mesh())
    batch = synthetic_batch(0, batch=8, inputs=16, targets=4)
    prompt_flops = _flops(steps.train_step.lower(state, frozen, batch).compile())

    def all_params_step(prompt, frozen, batch, rng):
        def loss(prompt, frozen):
            return train.loss_fn(
                {"prompt": prompt}, frozen, batch, rng, config=config, step_config=step_config
            )[0]

        return jax.value_and_grad(loss, argnums=(0, 1))(prompt, frozen)

    full_flops = _flops(
        jax.jit(all_params_step).lower(prompt, frozen, batch, jax.random.PRNGKey(0)).compile()
    )
    print(
        f"train step FLOPs: prompt-only {prompt_flops:.3e}, all params {full_flops:.3e}, "
        f"ratio {prompt_flops / full_flops:.3f}"
    )
    assert prompt_flops <= 0.8 * full_flops


@pytest.mark.slow
def test_same_result_on_one_and_eight_devices(tmp_path):
    losses, prompt = three_steps((1, 1), jax.devices()[:1])
    out = tmp_path / "sharded.npz"
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    subprocess.run(
        [sys.executable, "-m", "tests.train_worker", "sharded", str(out)],
        cwd=REPO,
        env=env,
        check=True,
        timeout=600,
    )
    results = np.load(out)
    initial = jax.random.uniform(jax.random.key(5), prompt.shape, minval=-0.5, maxval=0.5)
    assert np.abs(prompt - np.asarray(initial)).max() > 0.05  # the prompt really moved
    for shape in ("8x1", "2x4", "1x8"):
        np.testing.assert_allclose(results[f"losses_{shape}"], losses, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(results[f"prompt_{shape}"], prompt, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    uninterrupted = trainer_run(str(tmp_path / "a"), steps=10)
    expected = np.asarray(uninterrupted.state.trainable["prompt"])

    resumed_dir = tmp_path / "b"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.train_worker", "train", str(resumed_dir), "10", "6"],
        cwd=REPO,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    marker = resumed_dir / "checkpoints" / "5" / "prompt.npy"
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the worker never saved step 5"
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    result = trainer_run(str(resumed_dir), steps=10)
    assert result.step == 10
    np.testing.assert_array_equal(np.asarray(result.state.trainable["prompt"]), expected)
    np.testing.assert_array_equal(
        np.load(resumed_dir / "checkpoints" / "10" / "prompt.npy"), expected
    )


@pytest.mark.slow
def test_output_dir_of_another_model_or_prompt_is_refused(tmp_path):
    trainer_run(str(tmp_path), steps=2)
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    with pytest.raises(CheckpointError, match="(?s)fingerprint.*Nothing was overwritten"):
        run_training(
            model_config=TINY,
            frozen_params=tiny_frozen(seed=1),
            trainable={"prompt": jnp.zeros((6, TINY.d_model))},
            train_batches=synthetic_batches,
            output_dir=str(tmp_path),
            trainer_config=TrainerConfig(steps=4, progress=False),
        )
    with pytest.raises(
        CheckpointError,
        match=r"prompt_shape: checkpoint has \[6, 16\], this "
        r"run has \[9, 16\]",
    ):
        run_training(
            model_config=TINY,
            frozen_params=tiny_frozen(),
            trainable={"prompt": jnp.zeros((9, TINY.d_model))},
            train_batches=synthetic_batches,
            output_dir=str(tmp_path),
            trainer_config=TrainerConfig(steps=4, progress=False),
        )
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    def batches(position):
        for i, batch in enumerate(synthetic_batches(position)):
            if position + i == 6:
                batch["decoder_loss_weights"] = batch["decoder_loss_weights"] * np.nan
            yield batch

    with pytest.raises(
        TrainingError,
        match="(?s)Non-finite loss \\(nan\\) at step 7.*last good checkpoint is step 5",
    ):
        run_training(
            model_config=TINY,
            frozen_params=tiny_frozen(),
            trainable={"prompt": jnp.zeros((6, TINY.d_model))},
            train_batches=batches,
            output_dir=str(tmp_path),
            trainer_config=TrainerConfig(
                steps=10, eval_every=0, checkpoint_every=5, progress=False
            ),
        )
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["5"]


def test_empty_data_and_bad_prompt_shape(tmp_path):
    with pytest.raises(TrainingError, match="training data source is empty"):
        run_training(
            model_config=TINY,
            frozen_params=tiny_frozen(),
            trainable={"prompt": jnp.zeros((6, TINY.d_model))},
            train_batches=[],
            output_dir=str(tmp_path / "a"),
            trainer_config=TrainerConfig(steps=3, progress=False),
        )
    with pytest.raises(TrainingError, match=r"prompt must be \[P, 16\].*got \(6, 8\)"):
        run_training(
            model_config=TINY,
            frozen_params=tiny_frozen(),
            trainable={"prompt": jnp.zeros((6, 8))},
            train_batches=synthetic_batches,
            output_dir=str(tmp_path / "b"),
            trainer_config=TrainerConfig(steps=3, progress=False),
        )


@pytest.mark.slow
def test_best_checkpoint_follows_the_validation_metric(tmp_path):
    def eval_batches():
        return [synthetic_batch(1000 + i) for i in range(2)]

    result = run_training(
        model_config=TINY,
        frozen_params=tiny_frozen(),
        trainable={"prompt": jnp.zeros((6, TINY.d_model))},
        train_batches=synthetic_batches,
        output_dir=str(tmp_path),
        eval_batches=eval_batches,
        trainer_config=TrainerConfig(steps=12, eval_every=4, progress=False),
    )
    from jaxprompt.training.metrics_log import read_metrics

    records = read_metrics(str(tmp_path))
    validation = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [4, 8, 12]
    best = min(validation, key=lambda r: r["loss"])
    assert result.best_step == best["step"] and result.best_metric == pytest.approx(best["loss"])
    assert os.path.exists(result.best_prompt_path)
    assert f"/best/{best['step']}/" in result.best_prompt_path
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert any(name.startswith("events") for name in os.listdir(tmp_path / "tensorboard"))


@pytest.mark.slow
def test_two_process_multihost_matches_one_process(tmp_path):

    from tests.helpers import run_processes
    from tests.multihost_reference import run

    reference = run(str(tmp_path / "single"), synthetic_batches)
    expected = np.asarray(reference.state.trainable["prompt"])

    output_dir = tmp_path / "multi"
    run_processes("tests.multihost_worker", 2, str(output_dir))
    expected_deep = jax.tree.map(np.asarray, reference.state.trainable["deep_prompt"])
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5)
    for i in range(2):
        close(np.load(output_dir / f"prompt_process_{i}.npy"), expected)
        jax.tree.map(
            close, load_deep_prompt(str(output_dir / f"deep_prompt_process_{i}.npz")), expected_deep
        )
    # Orbax wrote one checkpoint from both processes; it restores to the same prompt.
    close(np.load(output_dir / "checkpoints" / "3" / "prompt.npy"), expected)
    jax.tree.map(
        close,
        load_deep_prompt(str(output_dir / "checkpoints" / "3" / "deep_prompt.npz")),
        expected_deep,
    )


@pytest.mark.slow
def test_two_process_multihost_decoder_only_matches_one_process(tmp_path):
    """The same 2-process job on a tiny Gemma-3-shaped decoder-only LM (sliding and global
    layers, its weights split over the model axis of each process's 4 devices)."""
    from tests.helpers import run_processes
    from tests.multihost_reference import run

    reference = run(str(tmp_path / "single"), synthetic_batches, family="decoder")
    expected = np.asarray(reference.state.trainable["prompt"])
    start = np.asarray(
        jax.random.uniform(jax.random.key(5), expected.shape, minval=-0.5, maxval=0.5)
    )
    assert np.abs(expected - start).max() > 1e-3  # the 3 steps moved the prompt
    output_dir = tmp_path / "multi"
    run_processes("tests.multihost_worker", 2, str(output_dir), "decoder")
    for i in range(2):
        np.testing.assert_allclose(
            np.load(output_dir / f"prompt_process_{i}.npy"), expected, rtol=1e-5, atol=1e-5
        )
    np.testing.assert_allclose(
        np.load(output_dir / "checkpoints" / "3" / "prompt.npy"), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.slow
def test_full_training_step_is_sgd_on_every_weight_and_dropout_follows_its_rng():
    """The baselines' all-weights step: one SGD step moves every weight by -lr x the gradient
    of the mean target-token NLL written out here by hand; dropout is on only with an rng,
    and the same rng gives the same step."""
    import dataclasses

    import optax

    from jaxprompt.training.weights import seq2seq_loss, weights_step

    config = dataclasses.replace(TINY, dropout_rate=0.3)
    model = T5(config)
    params, batch = tiny_frozen(), synthetic_batch(0)

    def mean_nll(p):
        logits = model.apply(
            {"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"]
        )
        log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        picked = jnp.take_along_axis(log_p, batch["decoder_target_tokens"][..., None], -1)[..., 0]
        weights = batch["decoder_loss_weights"]
        return -(picked * weights).sum() / weights.sum()

    expected_nll, grads = jax.jit(jax.value_and_grad(mean_nll))(params)  # jit: 9 s eager
    lr = 0.1
    sgd = optax.sgd(lr)
    step = weights_step(seq2seq_loss(model), sgd)
    copy = lambda tree: jax.tree.map(lambda a: jnp.array(a, copy=True), tree)
    new, _, metrics = step(copy(params), sgd.init(params), batch)
    nll = metrics["loss"]
    np.testing.assert_allclose(float(nll), float(expected_nll), rtol=1e-5)
    moved = jax.tree.map(
        lambda a, b, g: (
            np.testing.assert_allclose(np.asarray(b), np.asarray(a - lr * g), rtol=1e-4, atol=1e-6)
            or bool(np.any(g != 0))
        ),
        params,
        new,
        grads,
    )
    assert all(jax.tree.leaves(moved)), "a weight received no gradient"

    with_rng = lambda key: step(copy(params), sgd.init(params), batch, jax.random.PRNGKey(key))[2][
        "loss"
    ]
    assert float(with_rng(1)) == float(with_rng(1))
    assert float(with_rng(1)) != float(with_rng(2))
    assert abs(float(with_rng(1)) - float(expected_nll)) > 1e-4
