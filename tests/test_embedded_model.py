"""The embedded pretrained T5 (jaxprompt/assets/t5_tiny_lm): loads by name, and a short
prompt tuning run on the bundled SST-2 lowers the validation loss with the weights frozen."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxprompt.data", reason="seqio/tensorflow not installed")
import jaxprompt  # noqa: E402
from jaxprompt import data, partitioning, train as train_lib  # noqa: E402
from jaxprompt.models.t5 import T5  # noqa: E402
from jaxprompt.optimizers import OptimizerConfig, prompt_optimizer  # noqa: E402
from jaxprompt.prompts import PromptConfig, init_prompt  # noqa: E402
from jaxprompt.quickstart import TINY_MODEL, sst2_task  # noqa: E402
from jaxprompt.trainer import TrainerConfig, train, validation_loss  # noqa: E402


def test_embedded_model_card_and_loading():
    for name in ("config.json", "model.safetensors", "spiece.model", "MODEL_CARD.md"):
        assert os.path.exists(os.path.join(TINY_MODEL, name)), name
    assert os.path.getsize(os.path.join(TINY_MODEL, "model.safetensors")) <= 25 * 2 ** 20
    config, params = jaxprompt.load_pretrained("tiny")
    assert config.is_gated and not config.tie_word_embeddings  # T5.1.1 architecture
    assert params["token_embedder"]["embedding"].dtype == jnp.bfloat16


def test_prompt_tuning_the_embedded_model_lowers_validation_loss(tmp_path):
    config, params = jaxprompt.load_pretrained("tiny", dtype=np.float32)
    frozen_before = jax.tree.map(np.array, params)
    vocab = data.vocabulary(os.path.join(TINY_MODEL, "spiece.model"))
    task = sst2_task()
    lengths = data.Lengths(64, 4)
    labels = tuple(tuple(vocab.encode(w)) for w in task.label_names)
    prompt = init_prompt(jax.random.key(0), params["token_embedder"]["embedding"],
                         PromptConfig(length=10, init="class_labels", label_token_ids=labels))
    eval_batches = data.eval_batches(task.name, "validation", 50, lengths)

    optimizer = prompt_optimizer(OptimizerConfig())
    steps = train_lib.shard_steps(T5(config), optimizer, train_lib.StepConfig(),
                                  train_lib.init_train_state(prompt, optimizer, 0),
                                  partitioning.make_mesh())
    before = validation_loss(steps, {"prompt": prompt}, params, eval_batches)["loss"]
    result = train(model_config=config, frozen_params=params, prompt=prompt,
                   train_batches=data.train_batches(task.name, 32, lengths, seed=0),
                   output_dir=str(tmp_path), eval_batches=eval_batches,
                   trainer_config=TrainerConfig(steps=40, eval_every=40, progress=False))
    after = result.best_metric
    print(f"embedded model, SST-2 validation loss: {before:.4f} -> {after:.4f} in 40 steps")
    assert after < before
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), frozen_before)
