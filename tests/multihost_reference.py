"""The 3-step training run shared by the multi-host test and its 1-process reference.

It trains a prompt and a deep prompt; on a (data, model) mesh with model > 1 the deep
prompt is sharded over the model axis, so gathering it exercises the cross-device path.
"""

from __future__ import annotations

import jax

from jaxprompt.prompts.deep import init_deep_prompt
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.loop import TrainerConfig, train
from tests.train_helpers import TINY, tiny_frozen


def run(output_dir: str, batches, mesh_shape=None):
    prompt = jax.random.uniform(jax.random.key(5), (6, TINY.d_model), minval=-0.5, maxval=0.5)
    frozen = tiny_frozen()
    deep_prompt = init_deep_prompt(jax.random.key(6), frozen, TINY, 3)
    # lr 0.03: see tests/train_worker.py (Adafactor amplifies summation-order noise).
    return train(
        model_config=TINY,
        frozen_params=frozen,
        trainable={"prompt": prompt, "deep_prompt": deep_prompt},
        train_batches=batches,
        output_dir=output_dir,
        optimizer_config=OptimizerConfig(learning_rate=0.03),
        trainer_config=TrainerConfig(
            steps=3, eval_every=0, checkpoint_every=3, mesh_shape=mesh_shape, progress=False
        ),
    )
