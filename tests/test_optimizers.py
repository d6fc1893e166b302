"""The paper's Adafactor against a hand computation, and the masking of frozen weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprompt.training.optimizers import OptimizerConfig, make_optimizer, prompt_optimizer


def _t5x_adafactor_reference(param, grads, lr=0.3, decay=0.8, wd=1e-5, clip=1.0, eps=1e-30):
    """t5x's Adafactor for an unfactored parameter (P < 128), written out in numpy."""
    param = param.astype(np.float64)
    v = np.zeros_like(param)
    for step, grad in enumerate(grads):
        beta2 = 1.0 - (step + 1.0) ** (-decay)
        v = beta2 * v + (1.0 - beta2) * (grad.astype(np.float64) ** 2 + eps)
        y = grad / np.sqrt(v)
        y = y / max(1.0, np.sqrt(np.mean(y * y)) / clip)
        param = (1.0 - wd) * param - lr * y  # t5x: decay not scaled by the learning rate
    return param


def test_adafactor_two_steps_match_hand_computation():
    rng = np.random.default_rng(0)
    prompt = rng.normal(size=(100, 32)).astype(np.float32)
    grads = [rng.normal(size=prompt.shape).astype(np.float32) * s for s in (1.0, 3.0)]
    tx = make_optimizer(OptimizerConfig())
    params = {"prompt": jnp.asarray(prompt)}
    state = tx.init(params)
    for grad in grads:
        updates, state = tx.update({"prompt": jnp.asarray(grad)}, state, params)
        params = optax.apply_updates(params, updates)
    expected = _t5x_adafactor_reference(prompt, grads)
    np.testing.assert_allclose(params["prompt"], expected, rtol=1e-5, atol=1e-5)
    # Step 1 has beta2 = 0, so the update is lr * sign(grad), minus the decay.
    first = _t5x_adafactor_reference(prompt, grads[:1])
    np.testing.assert_allclose(first, prompt * (1 - 1e-5) - 0.3 * np.sign(grads[0]), atol=1e-6)


def test_mask_never_moves_frozen_weights_and_keeps_no_state_for_them():
    tx = prompt_optimizer(OptimizerConfig(name="adamw", learning_rate=0.1, weight_decay=0.1))
    combined = {
        "prompt": jnp.ones((5, 8)),
        "frozen": {"embedding": jnp.ones((64, 8)), "kernel": jnp.ones((8, 16))},
    }
    state = tx.init(combined)
    shapes = {tuple(x.shape) for x in jax.tree.leaves(state)}
    assert (64, 8) not in shapes and (8, 16) not in shapes
    assert (5, 8) in shapes
    grads = jax.tree.map(jnp.ones_like, combined)
    updates, _ = tx.update(grads, state, combined)
    new = optax.apply_updates(combined, updates)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), new["frozen"], combined["frozen"])
    )
    assert not jnp.array_equal(new["prompt"], combined["prompt"])
