"""Pretraining the embedded tiny T5 from scratch, resumably: its optimizer, its loss (the
seq2seq loss plus a masked-token loss on the encoder outputs) and the writing of the model.
The step and the loop (checkpoints, resume, Ctrl-C, logs) are `jaxprompt.training.weights`',
the ones the full-fine-tuning baseline runs too; `tools/pretrain_tiny.py` is the command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np

from jaxprompt.pretraining.config import PretrainConfig
from jaxprompt.pretraining.corpus import svd_embedding
from jaxprompt.pretraining.objectives import batches
from jaxprompt.training.weights import WeightsLoopConfig, seq2seq_loss, train_weights, weights_step


def make_optimizer(pc: PretrainConfig):
    """AdamW whose step on the attention query kernels is divided by sqrt(d_kv) (default).

    T5 folds attention's 1/sqrt(d_kv) into the query kernel's init (std (H*d_kv)**-0.5)
    instead of scaling the logits. Adam's steps have an absolute size, so plain AdamW moves
    the queries sqrt(d_kv) times faster, relative to their scale, than in a transformer that
    scales its logits: the attention logits blow up, every query attends to one position and
    the encoder collapses (measured: MODEL_CARD.md). Dividing the queries' learning rate by
    sqrt(d_kv) restores the standard dynamics and keeps the checkpoint plain T5. "adafactor"
    (T5's own, parameter-scaled steps) avoids the blow-up too but barely moves attention in
    a few thousand steps; "adamw" is the collapsing baseline.
    """
    import optax
    from flax import traverse_util

    schedule = optax.warmup_cosine_decay_schedule(
        0.0, pc.learning_rate, pc.warmup_steps, pc.steps, pc.learning_rate * 0.1
    )
    if pc.optimizer == "adafactor":
        return optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.adafactor(
                schedule, multiply_by_parameter_scale=True, clipping_threshold=1.0, decay_rate=0.8
            ),
        )
    adamw = lambda lr: optax.adamw(lr, b2=0.98, weight_decay=pc.weight_decay)
    if pc.optimizer == "adamw":
        return optax.chain(optax.clip_by_global_norm(1.0), adamw(schedule))
    if pc.optimizer == "adamw_scaled_query":
        query_schedule = lambda step: schedule(step) * pc.d_kv**-0.5

        def labels(params):
            flat = traverse_util.flatten_dict(params)
            return traverse_util.unflatten_dict(
                {path: "query" if "query" in path else "rest" for path in flat}
            )

        return optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.multi_transform(
                {"query": adamw(query_schedule), "rest": adamw(schedule)}, labels
            ),
        )
    raise ValueError(
        f"optimizer must be 'adamw_scaled_query', 'adamw' or 'adafactor', got {pc.optimizer!r}."
    )


def pretraining_loss(model, z_loss: float, mlm_weight: float):
    """The seq2seq loss (`seq2seq_loss`) plus `mlm_weight` times the masked-token NLL read
    from the encoder outputs through the tied embedding (no extra weights). Metrics:
    {"loss": seq2seq token NLL, "mlm_loss": masked-token NLL}."""
    import jax.numpy as jnp

    from jaxprompt.models.losses import cross_entropy

    if not mlm_weight:
        return seq2seq_loss(model, z_loss)
    config = model.config

    def loss(params, batch, rng):
        variables = {"params": params}
        encoded, mask = model.apply(variables, batch["encoder_input_tokens"], method=model.encode)
        logits = model.apply(
            variables, encoded, mask, batch["decoder_input_tokens"], method=model.decode
        )
        seq = cross_entropy(
            logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss
        )
        weight = jnp.maximum(seq["weight"], 1.0)
        picked = jnp.take_along_axis(encoded, batch["mlm_positions"][..., None], axis=1)
        embedding = params["token_embedder"]["embedding"]
        mlm_logits = jnp.einsum("bkh,vh->bkv", picked * config.d_model**-0.5, embedding)
        mlm = cross_entropy(mlm_logits, batch["mlm_targets"], batch["mlm_weights"])
        mlm_nll = mlm["nll"] / jnp.maximum(mlm["weight"], 1.0)
        return (
            seq["loss"] / weight + mlm_weight * mlm_nll,
            {"loss": seq["nll"] / weight, "mlm_loss": mlm_nll},
        )

    return loss


def pretrain(
    pc: PretrainConfig,
    streams,
    workdir: str,
    *,
    checkpoint_every: int = 250,
    monitor_every: int = 250,
    monitor=None,
    stop_after: int | None = None,
    progress: bool = True,
    pairs=(),
    data_workers: int = 0,
    embedding_cache: str | None = None,
):
    """Trains from scratch or from the latest checkpoint in `workdir`; returns params.

    `monitor(step, params) -> dict` is logged to workdir/metrics.jsonl (split "eval").
    `stop_after` ends the run early (after that step, checkpointed), as an interruption.
    `data_workers`: processes making the batches (see `objectives.batches`).
    `embedding_cache`: a .npy file holding the PPMI-SVD initial embedding (read if there,
    else computed and written).
    """
    import jax

    from jaxprompt.models.t5 import T5, init_params

    config = pc.model_config()
    model = T5(config)
    optimizer = make_optimizer(pc)
    if pc.embedding_init not in ("svd", "normal"):
        raise ValueError(f"embedding_init must be 'svd' or 'normal', got {pc.embedding_init!r}.")
    if pc.mlm_weight and not config.tie_word_embeddings:
        raise ValueError(
            "mlm_weight needs tie_word_embeddings (the loss reads the encoder "
            "through the shared embedding)."
        )
    params = init_params(config, jax.random.key(pc.seed))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "pretrain_config.json"), "w") as f:
        json.dump(dataclasses.asdict(pc), f, indent=1)
    fresh = not os.path.isdir(os.path.join(workdir, "checkpoints"))
    if fresh and pc.embedding_init == "svd":
        if embedding_cache and os.path.exists(embedding_cache):
            vectors = np.load(embedding_cache)
        else:
            vectors = svd_embedding(streams, config.vocab_size, config.d_model, pc.seed)
            if embedding_cache:
                np.save(embedding_cache, vectors)
        params["token_embedder"]["embedding"] = jax.numpy.asarray(vectors)
    step = weights_step(pretraining_loss(model, pc.z_loss, pc.mlm_weight), optimizer)
    loop = WeightsLoopConfig(
        steps=pc.steps,
        checkpoint_every=checkpoint_every,
        evaluate_every=monitor_every if monitor else 0,
        progress=progress,
        name="pretrain",
    )
    end = pc.steps if stop_after is None else min(pc.steps, stop_after)
    params, _ = train_weights(
        step,
        params,
        optimizer.init(params),
        lambda start: batches(streams, pc, pairs, start, end, data_workers),
        loop,
        workdir=workdir,
        evaluate=monitor,
        stop_after=stop_after,
    )
    return params


def write_model(out: str, config, params, workdir: str, vocabulary: str) -> None:
    import ml_dtypes

    from jaxprompt.checkpoints.hf import save_hf_checkpoint

    os.makedirs(out, exist_ok=True)
    save_hf_checkpoint(out, config, params, dtype=ml_dtypes.bfloat16)
    shutil.copyfile(vocabulary, os.path.join(out, "spiece.model"))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    with open(os.path.join(workdir, "pretrain_config.json")) as f:
        pc = json.load(f)
    with open(os.path.join(out, "pretrain_log.json"), "w") as f:
        json.dump({"config": pc, "curve": records}, f, indent=0)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    train = [r for r in records if r.get("split", "train") == "train"]
    left.plot([r["step"] for r in train], [r["loss"] for r in train])
    left.set_xlabel("step")
    left.set_ylabel("token NLL (span corruption + prefix LM)")
    probes = [r for r in records if "probe_encoder" in r]
    right.plot(
        [r["step"] for r in probes],
        [r["probe_encoder"] for r in probes],
        label="probe: encoder states",
    )
    right.plot(
        [r["step"] for r in probes],
        [r["probe_embeddings"] for r in probes],
        label="probe: input embeddings",
    )
    right.set_xlabel("step")
    right.set_ylabel("SST-2 linear probe accuracy (%)")
    right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "pretrain_curve.png"), dpi=90)


__all__ = ["make_optimizer", "pretrain", "pretraining_loss", "write_model"]
