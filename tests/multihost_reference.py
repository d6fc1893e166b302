"""The 3-step training run shared by the multi-host test and its 1-process reference.

On T5 it trains a prompt and a deep prompt; on a (data, model) mesh with model > 1 the deep
prompt is sharded over the model axis, so gathering it exercises the cross-device path. On
a tiny Gemma-3-shaped decoder-only LM (family "decoder") it trains the prompt, the frozen
weights split over the model axis.
"""

from __future__ import annotations

import jax

from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.models import decoder
from jaxprompt.prompts.deep import init_deep_prompt
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.loop import TrainerConfig, train
from tests.train_helpers import TINY, tiny_frozen


# Sliding and global layers, grouped-query attention (8 query, 4 key/value heads: the model
# axis of 4 splits both), QK-norm, sandwich norms, scaled embeddings: Gemma 3's switches.
TINY_DECODER = DecoderConfig(
    model_type="gemma3",
    vocab_size=64,
    d_model=16,
    num_layers=2,
    num_heads=8,
    num_kv_heads=4,
    head_dim=4,
    d_ff=32,
    activation="gelu_tanh",
    norm_plus_one=True,
    sandwich_norms=True,
    qk_norm=True,
    scale_embeddings=True,
    rope_local_theta=10000.0,
    rope_theta=1e6,
    layer_kinds=("sliding", "global"),
    sliding_window=6,
    max_length=64,
    bos_id=2,
    eos_id=1,
)


def run(output_dir: str, batches, mesh_shape=None, family: str = "t5"):
    config = TINY if family == "t5" else TINY_DECODER
    prompt = jax.random.uniform(jax.random.key(5), (6, config.d_model), minval=-0.5, maxval=0.5)
    trainable = {"prompt": prompt}
    if family == "t5":
        frozen = tiny_frozen()
        trainable["deep_prompt"] = init_deep_prompt(jax.random.key(6), frozen, TINY, 3)
    else:
        frozen = decoder.init_params(TINY_DECODER, jax.random.key(0))
    # lr 0.03: see tests/train_worker.py (Adafactor amplifies summation-order noise).
    return train(
        model_config=config,
        frozen_params=frozen,
        trainable=trainable,
        train_batches=batches,
        output_dir=output_dir,
        optimizer_config=OptimizerConfig(learning_rate=0.03),
        trainer_config=TrainerConfig(
            steps=3, eval_every=0, checkpoint_every=3, mesh_shape=mesh_shape, progress=False
        ),
    )
