"""Pretrains jaxprompt's embedded tiny T5 (T5.1.1 architecture) the way the paper's models
were made, at toy scale: T5's span corruption, then LM adaptation (prefix LM).

    JAX_PLATFORMS=cpu python tools/pretrain_tiny.py --shared ../shared \
        --out jaxprompt/assets/t5_tiny_lm

Corpus: training-split text only (SST-2 train sentences, SuperGLUE RTE/WSC train passages,
FewGLUE train32 passages); never validation or test text. Vocabulary: T5's SentencePiece
model (32,000 pieces + 100 sentinels). Full training of all weights with jaxprompt's own
Flax T5, deterministic from --seed. Writes a Hugging Face-layout directory (config.json,
model.safetensors in bfloat16, spiece.model), pretrain_log.json and pretrain_curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SENTINEL_BASE = 32099  # <extra_id_0>; <extra_id_k> = 32099 - k
EOS = 1


def tiny_config():
    from jaxprompt.config import T5Config
    # d_model 128 keeps the bf16 checkpoint under 25 MB: the two 32,128-row embedding tables
    # (input and untied output) are 8.2M of the 10.5M parameters.
    return T5Config(vocab_size=32128, d_model=128, num_heads=4, d_kv=32, d_ff=512, num_layers=4,
                    num_decoder_layers=4, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, dropout_rate=0.0)


def read_corpus(shared: str) -> list[str]:
    """Training-split text of the bundled corpora (no validation/test text)."""
    texts = []
    with open(os.path.join(shared, "data", "sst2", "train.tsv"), encoding="utf-8") as f:
        next(f)
        texts += [line.split("\t")[0].strip() for line in f if line.strip()]
    superglue = os.path.join(shared, "data", "superglue")
    fields = {"rte": ("premise", "hypothesis"), "wsc": ("text",)}
    for task, keys in fields.items():
        with open(os.path.join(superglue, task, "train.jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts += [row[k] for k in keys]
    fewglue = os.path.join(shared, "data", "fewglue")
    for task in sorted(os.listdir(fewglue)):
        with open(os.path.join(fewglue, task, "train32.jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                for key in ("premise", "hypothesis", "passage", "question", "text", "sentence1",
                            "sentence2", "choice1", "choice2"):
                    value = row.get(key)
                    if isinstance(value, dict):
                        value = value.get("text")
                    if isinstance(value, str):
                        texts.append(value)
    return texts


def token_stream(texts: list[str], vocab) -> np.ndarray:
    ids = []
    for text in texts:
        ids.extend(vocab.encode(text))
        ids.append(EOS)
    return np.asarray(ids, np.int32)


def span_corruption(chunk: np.ndarray, rng: np.random.Generator, density=0.15, mean_span=3.0):
    """T5's objective: noise spans -> sentinels in the input; targets list the spans."""
    n = len(chunk)
    noise = max(1, int(round(n * density)))
    spans = max(1, min(int(round(noise / mean_span)), n - noise))

    def partition(total, parts):
        cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False)) if parts > 1 \
            else np.array([], int)
        return np.diff(np.concatenate([[0], cuts, [total]]))

    noise_lengths, keep_lengths = partition(noise, spans), partition(n - noise, spans)
    inputs, targets, position = [], [], 0
    for k, (keep, drop) in enumerate(zip(keep_lengths, noise_lengths)):
        inputs.extend(chunk[position:position + keep])
        position += keep
        inputs.append(SENTINEL_BASE - k)
        targets.append(SENTINEL_BASE - k)
        targets.extend(chunk[position:position + drop])
        position += drop
    return np.asarray(inputs + [EOS], np.int32), np.asarray(targets + [EOS], np.int32)


def prefix_lm(chunk: np.ndarray, rng: np.random.Generator):
    """LM adaptation: continue the text from a random split point in its second half."""
    split = int(rng.integers(len(chunk) // 2, len(chunk)))
    return (np.asarray(list(chunk[:split]) + [EOS], np.int32),
            np.asarray(list(chunk[split:]) + [EOS], np.int32))


def make_batch(stream, rng, objective, batch, chunk_length, inputs_length, targets_length):
    encoder = np.zeros((batch, inputs_length), np.int32)
    target = np.zeros((batch, targets_length), np.int32)
    for row in range(batch):
        start = int(rng.integers(0, len(stream) - chunk_length))
        inputs, targets = objective(stream[start:start + chunk_length], rng)
        inputs, targets = inputs[:inputs_length], targets[:targets_length]
        encoder[row, :len(inputs)] = inputs
        target[row, :len(targets)] = targets
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    return {"encoder_input_tokens": encoder, "decoder_input_tokens": decoder_input,
            "decoder_target_tokens": target,
            "decoder_loss_weights": (target > 0).astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "shared"))
    parser.add_argument("--out", default="jaxprompt/assets/t5_tiny_lm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--span_steps", type=int, default=1200)
    parser.add_argument("--lm_steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    args = parser.parse_args()

    import jax
    import ml_dtypes
    import optax
    from tqdm import tqdm

    from jaxprompt.checkpoints.hf import save_hf_checkpoint
    from jaxprompt.data.tasks import DEFAULT_VOCABULARY, vocabulary
    from jaxprompt.models.t5 import T5, init_params
    from jaxprompt.train import full_training_step

    start_time = time.time()
    vocab = vocabulary(DEFAULT_VOCABULARY)
    texts = read_corpus(args.shared)
    stream = token_stream(texts, vocab)
    print(f"corpus: {len(texts):,} training texts, {len(stream):,} tokens")

    config = tiny_config()
    model = T5(config)
    params = init_params(config, jax.random.key(args.seed))
    total_steps = args.span_steps + args.lm_steps
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.learning_rate,
                                                  min(200, total_steps // 10), total_steps,
                                                  args.learning_rate * 0.1)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adamw(schedule, weight_decay=0.01))
    opt_state = optimizer.init(params)

    step = full_training_step(model, optimizer, z_loss=1e-4)

    rng = np.random.default_rng(args.seed)
    phases = [("span_corruption", span_corruption, args.span_steps, 64, 64, 24),
              ("lm_adaptation", prefix_lm, args.lm_steps, 48, 48, 24)]
    log = {"config": config.architecture(), "seed": args.seed, "batch": args.batch,
           "corpus_texts": len(texts), "corpus_tokens": int(len(stream)), "phases": []}
    curve = []
    global_step = 0
    for name, objective, steps, chunk, inputs_length, targets_length in phases:
        losses = []
        bar = tqdm(range(steps), desc=name, unit="step", dynamic_ncols=True)
        for _ in bar:
            batch = make_batch(stream, rng, objective, args.batch, chunk, inputs_length,
                               targets_length)
            params, opt_state, nll = step(params, opt_state, batch)
            global_step += 1
            if global_step % 25 == 0:
                losses.append(float(nll))
                curve.append((global_step, name, losses[-1]))
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        log["phases"].append({"name": name, "steps": steps, "first_loss": losses[0],
                              "final_loss": float(np.mean(losses[-4:]))})
    seconds = time.time() - start_time
    log["seconds"] = seconds

    os.makedirs(args.out, exist_ok=True)
    save_hf_checkpoint(args.out, config, jax.device_get(params), dtype=ml_dtypes.bfloat16)
    shutil.copyfile(DEFAULT_VOCABULARY, os.path.join(args.out, "spiece.model"))
    with open(os.path.join(args.out, "pretrain_log.json"), "w") as f:
        json.dump({**log, "curve": curve}, f, indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("span_corruption", "lm_adaptation"):
        points = [(s, l) for s, n, l in curve if n == name]
        ax.plot(*zip(*points), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("token NLL")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "pretrain_curve.png"), dpi=90)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors")) / 2 ** 20
    print(f"done in {seconds / 60:.1f} min; {log['phases']}; model.safetensors {size:.1f} MiB")


if __name__ == "__main__":
    main()
