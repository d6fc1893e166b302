"""What the tools share: the repository on sys.path, model-shape flags, timing, batches,
result files."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def add_shape_flags(parser: argparse.ArgumentParser, batch: int) -> None:
    """--preset, --prompt_length, --batch, --inputs, --targets: the shape a benchmark runs."""
    parser.add_argument("--preset", default="t5_1_1_small")
    parser.add_argument("--prompt_length", type=int, default=100)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--inputs", type=int, default=128)
    parser.add_argument("--targets", type=int, default=8)


def median_result(runs: list[dict]) -> dict:
    """Per-key median of the numeric fields of several runs of one configuration."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            out[key] = statistics.median(r[key] for r in runs)
    return out


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls, after one warm-up (compile) call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_batch(args, vocab_size: int, seed: int = 0, eos_id: int = 1) -> dict:
    """A training batch of random ids [batch, inputs] / [batch, targets], EOS-terminated."""
    import numpy as np

    rng = np.random.default_rng(seed)
    encoder = rng.integers(3, vocab_size, (args.batch, args.inputs)).astype(np.int32)
    encoder[:, -1] = eos_id
    target = rng.integers(3, vocab_size, (args.batch, args.targets)).astype(np.int32)
    target[:, -1] = eos_id
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    return {
        "encoder_input_tokens": encoder,
        "decoder_input_tokens": decoder_input,
        "decoder_target_tokens": target,
        "decoder_loss_weights": np.ones_like(target, np.float32),
    }


def model_config(name: str):
    """A preset's config: T5Config presets, decoder-only presets (`DECODER_PRESETS`, e.g.
    gemma3_270m), or "tiny": the embedded pretrained T5's (the T5 quickstart's)."""
    from jaxprompt.config import T5Config
    from jaxprompt.decoder_config import DECODER_PRESETS

    if name in DECODER_PRESETS:
        return DECODER_PRESETS[name]
    if name == "tiny":
        return T5Config.from_hf_config(
            os.path.join(REPO, "jaxprompt", "assets", "t5_tiny_lm", "config.json")
        )
    return T5Config.preset(name)


def random_prompt_step(args, dtype: str, scan: bool = False, remat: str = "none"):
    """The train step `jaxprompt train` runs (`training.step.shard_steps`, Adafactor, no
    dropout) on a random model of `args.preset`'s shape, compute and frozen weights in
    `dtype`, a uniform random prompt [args.prompt_length, H] and a random batch:
    (config, sharded steps, state, frozen params, batch), all placed."""
    import jax

    from jaxprompt import partitioning
    from jaxprompt.models.family import family_of
    from jaxprompt.training import optimizers
    from jaxprompt.training import step as train

    config = model_config(args.preset).replace(
        dropout_rate=0.0, dtype=dtype, scan_layers=scan, remat_policy=remat
    )
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    prompt = jax.random.uniform(
        jax.random.key(1), (args.prompt_length, config.d_model), minval=-0.5, maxval=0.5
    )
    state = train.init_train_state({"prompt": prompt}, optimizer, seed=0)
    steps = train.shard_steps(
        config,
        optimizer,
        train.StepConfig(enable_dropout=False),
        state,
        partitioning.make_mesh(),
    )
    family = family_of(config)
    frozen = family.model_layout(family.init_params(config, jax.random.key(0)), config)
    frozen = jax.tree.map(lambda w: w.astype(dtype), frozen)
    frozen = jax.device_put(frozen, steps.frozen_shardings)
    batch = random_batch(args, config.vocab_size, eos_id=config.eos_id)
    batch = jax.device_put(batch, steps.batch_sharding)
    return config, steps, state, frozen, batch


def write_json(path: str, value) -> None:
    """A finished run's result file, written whole or not at all (a killed tool leaves no
    half file that a rerun would take for finished)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1)
    os.replace(path + ".tmp", path)
