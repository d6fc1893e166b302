"""Subprocess entry points for trainer tests (run as `python -m tests.train_worker ...`).

sharded OUT.npz              3 train steps on meshes (8,1), (2,4), (1,8) of 8 CPU devices
train OUT_DIR STEPS SLOW_AFTER   trainer.train with a data source that slows down after
                             SLOW_AFTER batches (so a test can kill it mid-run)
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from tests.train_helpers import TINY, synthetic_batch, synthetic_batches, tiny_frozen


def three_steps(mesh_shape, devices=None) -> tuple[list[float], np.ndarray]:
    from jaxprompt import partitioning
    from jaxprompt.training import optimizers, step as train

    # Adafactor normalises each gradient element by its own RMS, so float32 summation-order
    # noise in tiny gradient elements reaches the prompt scaled by the learning rate; 0.03
    # keeps that below the 1e-5 comparison while the prompt still moves by ~0.1.
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig(learning_rate=0.03))
    prompt = jax.random.uniform(jax.random.key(5), (6, TINY.d_model), minval=-0.5, maxval=0.5)
    state = train.init_train_state({"prompt": prompt}, optimizer, seed=0)
    mesh = partitioning.make_mesh(mesh_shape, devices)
    steps = train.shard_steps(TINY, optimizer, train.StepConfig(), state, mesh)
    frozen = jax.device_put(tiny_frozen(), steps.frozen_shardings)
    state = jax.device_put(state, steps.state_shardings)
    losses = []
    for i in range(3):
        batch = jax.device_put(synthetic_batch(i), steps.batch_sharding)
        state, metrics = steps.train_step(state, frozen, batch)
        losses.append(float(metrics["loss"]))
    return losses, np.asarray(state.trainable["prompt"])


def trainer_run(output_dir: str, steps: int, slow_after: int = -1):
    from jaxprompt.training.loop import TrainerConfig, train

    def batches(position):
        for i, batch in enumerate(synthetic_batches(position)):
            if slow_after >= 0 and position + i >= slow_after:
                time.sleep(30)
            yield batch

    prompt = jax.random.uniform(jax.random.key(5), (6, TINY.d_model), minval=-0.5, maxval=0.5)
    return train(
        model_config=TINY,
        frozen_params=tiny_frozen(),
        trainable={"prompt": prompt},
        train_batches=batches,
        output_dir=output_dir,
        trainer_config=TrainerConfig(steps=steps, eval_every=0, checkpoint_every=5, progress=False),
    )


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "sharded":
        assert jax.device_count() == 8, jax.devices()
        out = {}
        for shape in ((8, 1), (2, 4), (1, 8)):
            losses, prompt = three_steps(shape)
            out[f"losses_{shape[0]}x{shape[1]}"] = np.asarray(losses)
            out[f"prompt_{shape[0]}x{shape[1]}"] = prompt
        np.savez(sys.argv[2], **out)
    elif mode == "train":
        trainer_run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
