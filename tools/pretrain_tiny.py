"""Pretrains jaxprompt's embedded tiny T5 with jaxprompt's own Flax T5, resumably.

    JAX_PLATFORMS=cpu python tools/pretrain_tiny.py --workdir ~/.cache/jaxprompt/pretrain \
        --steps 6000 --out jaxprompt/assets/t5_tiny_lm          # Ctrl-C, then --resume

On an accelerator, batches come from worker processes, and the tokenized corpus can travel as
one file to a machine without ../shared or WordNet:

    python tools/pretrain_tiny.py --corpus_cache corpus.npz ...   # here: builds corpus.npz
    python tools/pretrain_tiny.py --corpus_cache corpus.npz --data_workers 4 --batch 128 ...

Objective: a mixture, per example, of T5's span corruption (15% noise, mean span 3,
sentinels) and prefix LM ("LM adaptation": continue the text from a split point), so
that the decoder both reads the encoder and generates a word right after the input.
Corpus: training-split text only (SST-2 train phrases minus a held-apart probe set,
SuperGLUE RTE/WSC train, FewGLUE train32) plus English prose that Debian packages ship
(WordNet 3.0 glosses, `wordnet-base`; fortune cookies, `fortunes`) when installed. Never
SST-2 validation/test text and never a label.

Resumable: orbax checkpoints of (params, optimizer state) every --checkpoint_every steps
in --workdir (outside git); batches are a pure function of (seed, step), so a resumed run
gives the same parameters as an uninterrupted one. Every --monitor_every steps it logs the
encoder's within-sentence token cosine and a linear probe of SST-2 sentiment on mean-pooled
encoder states (held-apart *training* rows; the model never trains on their labels), and
it refuses to write a collapsed model (token cosine above --max_token_cosine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import time

import numpy as np

import _common  # noqa: F401  (puts the repository on sys.path)

EOS = 1
SENTINEL_BASE = 32099  # <extra_id_0>; <extra_id_k> = 32099 - k
MASK_ID = 32000  # <extra_id_99>: the encoder's masked-token placeholder (spans use few sentinels)
PROBE_ROWS = 3000  # SST-2 train rows held apart from pretraining, for the linear probe only


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    d_model: int = 256
    num_heads: int = 4
    d_kv: int = 64
    d_ff: int = 1024
    num_layers: int = 4
    num_decoder_layers: int = 4
    tie_word_embeddings: bool = True
    steps: int = 6000
    batch: int = 32
    inputs_length: int = 64
    targets_length: int = 24
    optimizer: str = "adamw_scaled_query"  # or "adamw", "adafactor" (MODEL_CARD.md compares)
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.0  # AdamW only
    z_loss: float = 1e-4
    lm_fraction: float = 0.5  # share of prefix-LM examples
    reconstruct_fraction: float = 0.0  # share of denoising-reconstruction examples (copying)
    # the rest is span corruption
    dictionary_fraction: float = 0.0  # share of reverse-dictionary rows (WordNet gloss -> word)
    mlm_weight: float = 1.0  # auxiliary masked-token loss on the encoder outputs (0: off)
    mlm_positions: int = 10  # at most this many masked encoder tokens per example
    task_text_fraction: float = 0.5  # share of windows from the SST-2 / SuperGLUE stream
    embedding_init: str = "svd"  # "svd": PPMI-SVD word vectors of the corpus; "normal": T5's
    seed: int = 0

    def model_config(self):
        from jaxprompt.config import T5Config
        return T5Config(vocab_size=32128, d_model=self.d_model, num_heads=self.num_heads,
                        d_kv=self.d_kv, d_ff=self.d_ff, num_layers=self.num_layers,
                        num_decoder_layers=self.num_decoder_layers,
                        feed_forward_proj="gated-gelu",
                        tie_word_embeddings=self.tie_word_embeddings, dropout_rate=0.0)


# ---------------------------------------------------------------------------- corpus

def sst2_train_rows(shared: str) -> list[tuple[str, int]]:
    with open(os.path.join(shared, "data", "sst2", "train.tsv"), encoding="utf-8") as f:
        next(f)
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return [(sentence.strip(), int(label)) for sentence, label in rows]


def split_probe_rows(rows, seed: int = 0):
    """(pretraining rows, probe rows): PROBE_ROWS rows of at least 5 words held apart."""
    order = np.random.default_rng(seed).permutation(len(rows))
    probe_index = [i for i in order if len(rows[i][0].split()) >= 5][:PROBE_ROWS]
    held = set(probe_index)
    return [rows[i] for i in range(len(rows)) if i not in held], [rows[i] for i in probe_index]


def task_texts(shared: str) -> list[str]:
    """Training-split text of the bundled task corpora (labels dropped)."""
    texts = [sentence for sentence, _ in split_probe_rows(sst2_train_rows(shared))[0]]
    superglue = os.path.join(shared, "data", "superglue")
    for task, keys in {"rte": ("premise", "hypothesis"), "wsc": ("text",)}.items():
        with open(os.path.join(superglue, task, "train.jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts += [row[k] for k in keys]
    fewglue = os.path.join(shared, "data", "fewglue")
    for task in sorted(os.listdir(fewglue)):
        with open(os.path.join(fewglue, task, "train32.jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                for key in ("premise", "hypothesis", "passage", "question", "text",
                            "sentence1", "sentence2", "choice1", "choice2"):
                    value = row.get(key)
                    if isinstance(value, dict):
                        value = value.get("text")
                    if isinstance(value, str):
                        texts.append(value)
    return texts


def wordnet_synsets(directory: str = "/usr/share/wordnet") -> list[tuple[list[str], str]]:
    """(lemmas, 'gloss; "example"') for every WordNet 3.0 synset (Debian wordnet-base)."""
    synsets = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(directory, f"data.{pos}")
        if not os.path.exists(path):
            return []
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                fields, gloss = line.split("|", 1)
                parts = fields.split()
                count = int(parts[3], 16)
                lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in parts[4:4 + 2 * count:2]]
                synsets.append((lemmas, gloss.strip()))
    return synsets


def wordnet_texts(directory: str = "/usr/share/wordnet") -> list[str]:
    """'lemma, lemma: gloss; "example"' for every WordNet 3.0 synset."""
    return [f"{', '.join(lemmas)}: {gloss}" for lemmas, gloss in wordnet_synsets(directory)]


def dictionary_pairs(processor, directory: str = "/usr/share/wordnet", max_target: int = 8
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """A reverse dictionary from WordNet 3.0: (gloss and examples, the synset's first word).

    The decoder learns to answer a whole text with one word that sums up its meaning:
    the shape of a classification target, from lexical knowledge (no task labels).
    """
    synsets = wordnet_synsets(directory)
    glosses = [gloss for _, gloss in synsets]
    words = [lemmas[0] for lemmas, _ in synsets]
    pairs = []
    for gloss, word in zip(processor.encode(glosses), processor.encode(words)):
        if 0 < len(word) < max_target:
            pairs.append((np.asarray(gloss + [EOS], np.int32), np.asarray(word + [EOS], np.int32)))
    return pairs


def fortune_texts(directory: str = "/usr/share/games/fortunes") -> list[str]:
    """Each fortune cookie of Debian's `fortunes` package (English, '%'-separated)."""
    texts = []
    if not os.path.isdir(directory):
        return texts
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if "." in name or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            texts += [" ".join(c.split()) for c in f.read().split("\n%\n") if c.strip()]
    return texts


def token_stream(texts: list[str], processor) -> np.ndarray:
    """One int32 stream of every text's pieces, each text ended by EOS (T5's packing)."""
    ids = processor.encode(texts)
    return np.fromiter((t for seq in ids for t in (*seq, EOS)), np.int32)


def svd_embedding(streams, vocab_size: int, dim: int, seed: int = 0, window: int = 4
                  ) -> np.ndarray:
    """Word vectors from the corpus itself, as an initial embedding table [V, dim].

    Co-occurrence counts within +-`window` tokens (weight 1/distance), positive PMI with
    context-distribution smoothing (0.75), a rank-`dim` randomized SVD, U * sqrt(S); each
    dimension is then standardized over the tokens seen, so rows look like T5's N(0, 1)
    init in scale but neighbours share meaning. Unseen ids keep N(0, 1) rows.
    """
    import scipy.sparse as sparse
    from sklearn.utils.extmath import randomized_svd

    stream = np.concatenate(streams)
    rows, cols, weights = [], [], []
    for distance in range(1, window + 1):
        a, b = stream[:-distance], stream[distance:]
        keep = (a > 2) & (b > 2)
        rows += [a[keep], b[keep]]
        cols += [b[keep], a[keep]]
        weights.append(np.full(2 * int(keep.sum()), 1.0 / distance, np.float32))
    counts = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows),
                                                          np.concatenate(cols))),
                               shape=(vocab_size, vocab_size)).tocsr().tocoo()
    total = counts.data.sum()
    row_sum = np.bincount(counts.row, counts.data, vocab_size)
    context = np.bincount(counts.col, counts.data, vocab_size) ** 0.75
    context *= total / context.sum()
    pmi = np.log(counts.data * total / (row_sum[counts.row] * context[counts.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])),
                             shape=(vocab_size, vocab_size))
    u, singular, _ = randomized_svd(ppmi, dim, n_iter=4, random_state=seed)
    vectors = u * np.sqrt(singular)
    seen = row_sum > 0
    vectors = (vectors - vectors[seen].mean(0)) / (vectors[seen].std(0) + 1e-9)
    rng = np.random.default_rng(seed)
    vectors[~seen] = rng.normal(size=(int((~seen).sum()), dim))
    return vectors.astype(np.float32)


def build_corpus(shared: str, processor, extra_text: bool = True) -> dict:
    """Everything pretraining reads, tokenized: {"streams": [task, other] int32 token
    streams, "pairs": reverse-dictionary (inputs, targets), "probe_ids" [N, 48],
    "probe_labels" [N], "extra_text": whether WordNet and fortunes are in (a second stream)}
    (the probe rows are held apart from the streams)."""
    extra = wordnet_texts() + fortune_texts() if extra_text else []
    task = task_texts(shared)
    streams = [token_stream(task, processor)]
    if extra:
        streams.append(token_stream(extra, processor))
    probe_rows = split_probe_rows(sst2_train_rows(shared))[1]
    return {"streams": streams, "pairs": dictionary_pairs(processor) if extra_text else [],
            "probe_ids": encode_rows(processor, [s for s, _ in probe_rows]),
            "probe_labels": np.asarray([label for _, label in probe_rows]),
            "extra_text": len(streams) > 1}


def save_corpus(path: str, corpus: dict) -> None:
    """One compressed .npz (token ids as uint16: the vocabulary has 32,128 ids)."""
    pairs = corpus["pairs"]
    ragged = lambda parts: (np.concatenate(parts).astype(np.uint16) if parts else
                            np.zeros(0, np.uint16), np.cumsum([0] + [len(p) for p in parts]))
    pair_inputs, input_offsets = ragged([a for a, _ in pairs])
    pair_targets, target_offsets = ragged([b for _, b in pairs])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **{f"stream_{i}": s.astype(np.uint16)
                                 for i, s in enumerate(corpus["streams"])},
                        pair_inputs=pair_inputs, input_offsets=input_offsets,
                        pair_targets=pair_targets, target_offsets=target_offsets,
                        probe_ids=corpus["probe_ids"], probe_labels=corpus["probe_labels"])


def load_corpus(path: str) -> dict:
    with np.load(path) as f:
        streams = [f[f"stream_{i}"].astype(np.int32) for i in range(2) if f"stream_{i}" in f]
        split = lambda values, offsets: [values[a:b].astype(np.int32)
                                         for a, b in zip(offsets[:-1], offsets[1:])]
        pairs = list(zip(split(f["pair_inputs"], f["input_offsets"]),
                         split(f["pair_targets"], f["target_offsets"])))
        return {"streams": streams, "pairs": pairs, "probe_ids": f["probe_ids"],
                "probe_labels": f["probe_labels"], "extra_text": len(streams) > 1}


# ---------------------------------------------------------------------------- objectives

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


def prefix_lm(chunk: np.ndarray, rng: np.random.Generator, targets_length: int):
    """LM adaptation: the encoder reads a prefix, the decoder continues it."""
    low = max(1, len(chunk) - targets_length + 1)
    split = int(rng.integers(low, len(chunk)))
    return (np.asarray(list(chunk[:split]) + [EOS], np.int32),
            np.asarray(list(chunk[split:]) + [EOS], np.int32))


def reconstruction(chunk: np.ndarray, rng: np.random.Generator):
    """Denoising autoencoding (BART's text infilling): the encoder reads the span-corrupted
    chunk, the decoder writes the whole original chunk, so most of what the decoder must
    say is in the encoder's input and cross-attention pays off from the first steps."""
    inputs, _ = span_corruption(chunk, rng)
    return inputs, np.asarray(list(chunk) + [EOS], np.int32)


def make_batch(streams, step: int, pc: PretrainConfig, pairs=()) -> dict[str, np.ndarray]:
    """The batch of `step`: a pure function of (seed, step), so resuming repeats nothing.

    `pairs`: (inputs, targets) token pairs of the reverse dictionary (`dictionary_fraction`)."""
    rng = np.random.default_rng([pc.seed, step])
    encoder = np.zeros((pc.batch, pc.inputs_length), np.int32)
    target = np.zeros((pc.batch, pc.targets_length), np.int32)
    chunk_length = pc.inputs_length - 1
    for row in range(pc.batch):
        if pc.dictionary_fraction and rng.random() < pc.dictionary_fraction:
            inputs, targets = pairs[int(rng.integers(len(pairs)))]
            if len(inputs) > pc.inputs_length:
                inputs = np.append(inputs[:pc.inputs_length - 1], EOS)
            encoder[row, :len(inputs)] = inputs
            target[row, :len(targets)] = targets[:pc.targets_length]
            continue
        stream = streams[0] if rng.random() < pc.task_text_fraction else streams[-1]
        start = int(rng.integers(0, len(stream) - chunk_length))
        chunk = stream[start:start + chunk_length]
        draw = rng.random()
        if draw < pc.lm_fraction:
            inputs, targets = prefix_lm(chunk, rng, pc.targets_length - 1)
        elif draw < pc.lm_fraction + pc.reconstruct_fraction:
            inputs, targets = reconstruction(chunk[:pc.targets_length - 1], rng)
        else:
            inputs, targets = span_corruption(chunk, rng)
        inputs, targets = inputs[:pc.inputs_length], targets[:pc.targets_length]
        encoder[row, :len(inputs)] = inputs
        target[row, :len(targets)] = targets
    decoder_input = np.zeros_like(target)
    decoder_input[:, 1:] = target[:, :-1]
    batch = {"decoder_input_tokens": decoder_input, "decoder_target_tokens": target,
             "decoder_loss_weights": (target > 0).astype(np.float32)}
    batch.update(mask_encoder_tokens(encoder, rng, pc.mlm_positions if pc.mlm_weight else 0))
    return batch


_WORKER_STATE: tuple = ()


def _init_batch_worker(streams, pc, pairs) -> None:
    global _WORKER_STATE
    _WORKER_STATE = (streams, pc, pairs)


def _batch_in_worker(step: int) -> dict[str, np.ndarray]:
    streams, pc, pairs = _WORKER_STATE
    return make_batch(streams, step, pc, pairs)


def batches(streams, pc: PretrainConfig, pairs, start: int, end: int, workers: int = 0):
    """The batches of steps [start, end) in order, made by `workers` processes (0: inline).

    make_batch is a pure function of (seed, step), so the workers change nothing but speed:
    an accelerator's step can be faster than one core makes the batch. At most 4 batches
    per worker are made ahead.
    """
    if workers <= 0:
        for step in range(start, end):
            yield make_batch(streams, step, pc, pairs)
        return
    import collections
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork after JAX has started threads
    with context.Pool(workers, _init_batch_worker, (streams, pc, pairs)) as pool:
        pending, next_step = collections.deque(), start
        while pending or next_step < end:
            while next_step < end and len(pending) < 4 * workers:
                pending.append(pool.apply_async(_batch_in_worker, (next_step,)))
                next_step += 1
            yield pending.popleft().get()


def mask_encoder_tokens(encoder: np.ndarray, rng: np.random.Generator, positions: int,
                        rate: float = 0.15) -> dict[str, np.ndarray]:
    """BERT-style masking of ordinary encoder tokens for the auxiliary loss.

    Up to `positions` tokens per row (each text token with probability `rate`; never padding,
    EOS, UNK or a sentinel) are replaced by MASK_ID. Returns the masked encoder_input_tokens
    [B, T] and mlm_positions / mlm_targets / mlm_weights [B, positions].
    """
    encoder = encoder.copy()
    rows = encoder.shape[0]
    where = np.zeros((rows, max(positions, 1)), np.int32)
    targets = np.zeros_like(where)
    weights = np.zeros(where.shape, np.float32)
    for row in range(rows if positions else 0):
        candidates = np.flatnonzero((encoder[row] > 2) & (encoder[row] < MASK_ID))
        chosen = candidates[rng.random(len(candidates)) < rate][:positions]
        where[row, :len(chosen)] = chosen
        targets[row, :len(chosen)] = encoder[row, chosen]
        weights[row, :len(chosen)] = 1.0
        encoder[row, chosen] = MASK_ID
    return {"encoder_input_tokens": encoder, "mlm_positions": where, "mlm_targets": targets,
            "mlm_weights": weights}


# ---------------------------------------------------------------------------- monitor

def encode_rows(processor, sentences: list[str], length: int = 48) -> np.ndarray:
    ids = np.zeros((len(sentences), length), np.int32)
    for i, seq in enumerate(processor.encode(sentences)):
        seq = (seq + [EOS])[:length]
        ids[i, :len(seq)] = seq
    return ids


def representation_report(model, params, probe_ids: np.ndarray, probe_labels: np.ndarray,
                          batch: int = 250) -> dict[str, float]:
    """Collapse and quality measures of the encoder on held-apart sentences.

    token_cosine: mean pairwise cosine of the final encoder states of the tokens of one
    sentence (1.0 = every token encoded alike: collapsed). probe_encoder / probe_embeddings:
    logistic-regression accuracy (fit on the first half, scored on the second) on the
    mean-pooled final encoder states / the mean-pooled input embeddings.
    """
    import jax
    import jax.numpy as jnp
    from sklearn.linear_model import LogisticRegression

    @jax.jit
    def pooled(params, ids):
        encoded, mask = model.apply({"params": params}, ids, method=model.encode)
        weights = mask[..., None].astype(jnp.float32)
        normed = encoded / (jnp.linalg.norm(encoded, axis=-1, keepdims=True) + 1e-9)
        cos = jnp.einsum("bth,bsh->bts", normed, normed)
        pair = weights[..., 0][:, :, None] * weights[..., 0][:, None, :]
        n = jnp.sum(weights[..., 0], axis=1)
        token_cos = (jnp.sum(cos * pair, axis=(1, 2)) - n) / jnp.maximum(n * (n - 1), 1.0)
        embed = params["token_embedder"]["embedding"][ids]
        mean = lambda x: jnp.sum(x * weights, axis=1) / jnp.maximum(n[:, None], 1.0)
        return mean(encoded), mean(embed), token_cos

    outs = [pooled(params, probe_ids[i:i + batch]) for i in range(0, len(probe_ids), batch)]
    encoded, embedded, token_cos = (np.concatenate([np.asarray(o[k]) for o in outs])
                                    for k in range(3))
    half = len(probe_ids) // 2

    def probe(features):
        features = (features - features[:half].mean(0)) / (features[:half].std(0) + 1e-6)
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(features[:half], probe_labels[:half])
        return 100.0 * clf.score(features[half:], probe_labels[half:])

    return {"token_cosine": float(np.mean(token_cos)), "probe_encoder": probe(encoded),
            "probe_embeddings": probe(embedded)}


# ---------------------------------------------------------------------------- training

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

    schedule = optax.warmup_cosine_decay_schedule(0.0, pc.learning_rate, pc.warmup_steps,
                                                  pc.steps, pc.learning_rate * 0.1)
    if pc.optimizer == "adafactor":
        return optax.chain(optax.clip_by_global_norm(1.0),
                           optax.adafactor(schedule, multiply_by_parameter_scale=True,
                                           clipping_threshold=1.0, decay_rate=0.8))
    adamw = lambda lr: optax.adamw(lr, b2=0.98, weight_decay=pc.weight_decay)
    if pc.optimizer == "adamw":
        return optax.chain(optax.clip_by_global_norm(1.0), adamw(schedule))
    if pc.optimizer == "adamw_scaled_query":
        query_schedule = lambda step: schedule(step) * pc.d_kv ** -0.5

        def labels(params):
            flat = traverse_util.flatten_dict(params)
            return traverse_util.unflatten_dict(
                {path: "query" if "query" in path else "rest" for path in flat})

        return optax.chain(optax.clip_by_global_norm(1.0), optax.multi_transform(
            {"query": adamw(query_schedule), "rest": adamw(schedule)}, labels))
    raise ValueError(f"optimizer must be 'adamw_scaled_query', 'adamw' or 'adafactor', got "
                     f"{pc.optimizer!r}.")


def pretraining_step(model, optimizer, z_loss: float, mlm_weight: float):
    """A jitted step training every weight on the seq2seq loss plus `mlm_weight` times the
    masked-token loss read from the encoder outputs through the tied embedding (no extra
    weights): (params, opt_state, batch) -> (params, opt_state, seq2seq NLL, MLM NLL)."""
    import functools

    import jax
    import jax.numpy as jnp
    import optax

    from jaxprompt.models.losses import cross_entropy

    config = model.config

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, batch):
        def loss(params):
            variables = {"params": params}
            encoded, mask = model.apply(variables, batch["encoder_input_tokens"],
                                        method=model.encode)
            logits = model.apply(variables, encoded, mask, batch["decoder_input_tokens"],
                                 method=model.decode)
            seq = cross_entropy(logits, batch["decoder_target_tokens"],
                                batch["decoder_loss_weights"], z_loss)
            total = seq["loss"] / jnp.maximum(seq["weight"], 1.0)
            picked = jnp.take_along_axis(encoded, batch["mlm_positions"][..., None], axis=1)
            embedding = params["token_embedder"]["embedding"]
            mlm_logits = jnp.einsum("bkh,vh->bkv", picked * config.d_model ** -0.5, embedding)
            mlm = cross_entropy(mlm_logits, batch["mlm_targets"], batch["mlm_weights"])
            mlm_nll = mlm["nll"] / jnp.maximum(mlm["weight"], 1.0)
            total = total + mlm_weight * mlm_nll
            return total, (seq["nll"] / jnp.maximum(seq["weight"], 1.0), mlm_nll)

        (_, (nll, mlm_nll)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, nll, mlm_nll

    return step


def checkpoint_manager(workdir: str, keep: int = 2):
    import orbax.checkpoint as ocp
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=keep))


def pretrain(pc: PretrainConfig, streams, workdir: str, *, checkpoint_every: int = 250,
             monitor_every: int = 250, monitor=None, stop_after: int | None = None,
             progress: bool = True, pairs=(), data_workers: int = 0,
             embedding_cache: str | None = None):
    """Trains from scratch or from the latest checkpoint in `workdir`; returns params.

    `monitor(step, params) -> dict` is logged to workdir/metrics.jsonl with the loss.
    `stop_after` ends the run early (after that step, checkpointed), as an interruption.
    `data_workers`: processes making the batches (see `batches`). `embedding_cache`: a .npy
    file holding the PPMI-SVD initial embedding (read if there, else computed and written).
    """
    import jax
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    from jaxprompt.models.t5 import T5, init_params

    config = pc.model_config()
    model = T5(config)
    optimizer = make_optimizer(pc)
    if pc.embedding_init not in ("svd", "normal"):
        raise ValueError(f"embedding_init must be 'svd' or 'normal', got {pc.embedding_init!r}.")
    if pc.mlm_weight and not config.tie_word_embeddings:
        raise ValueError("mlm_weight needs tie_word_embeddings (the loss reads the encoder "
                         "through the shared embedding).")
    params = init_params(config, jax.random.key(pc.seed))
    opt_state = optimizer.init(params)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "pretrain_config.json"), "w") as f:
        json.dump(dataclasses.asdict(pc), f, indent=1)
    manager = checkpoint_manager(workdir)
    start = 0
    if manager.latest_step() is not None:
        start = manager.latest_step()
        restored = manager.restore(start, args=ocp.args.StandardRestore(
            {"params": params, "opt_state": opt_state}))
        params, opt_state = restored["params"], restored["opt_state"]
        print(f"resumed from {workdir} at step {start}")
    elif pc.embedding_init == "svd":
        if embedding_cache and os.path.exists(embedding_cache):
            vectors = np.load(embedding_cache)
        else:
            vectors = svd_embedding(streams, config.vocab_size, config.d_model, pc.seed)
            if embedding_cache:
                np.save(embedding_cache, vectors)
        params["token_embedder"]["embedding"] = jax.numpy.asarray(vectors)
    step_fn = pretraining_step(model, optimizer, pc.z_loss, pc.mlm_weight)
    end = pc.steps if stop_after is None else min(pc.steps, stop_after)
    log_path = os.path.join(workdir, "metrics.jsonl")
    losses, tick = [], time.time()
    bar = tqdm(range(start, end), initial=start, total=pc.steps, desc="pretrain", unit="step",
               dynamic_ncols=True, disable=not progress, mininterval=10)
    source = batches(streams, pc, pairs, start, end, data_workers)
    for step, batch in zip(bar, source):
        params, opt_state, nll, mlm_nll = step_fn(params, opt_state, batch)
        losses.append((nll, mlm_nll))
        done = step + 1
        if done % 25 == 0 or done == end:
            seq_mean, mlm_mean = np.mean(jax.device_get(losses), axis=0)
            record = {"step": done, "loss": float(seq_mean), "mlm_loss": float(mlm_mean),
                      "seconds_per_step": (time.time() - tick) / len(losses)}
            losses, tick = [], time.time()
            if monitor is not None and (done % monitor_every == 0 or done == end):
                record.update(monitor(done, params))
                tick = time.time()
            bar.set_postfix({k: round(v, 3) for k, v in record.items() if k != "step"})
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if done % checkpoint_every == 0 or done == end:
            manager.save(done, args=ocp.args.StandardSave(
                {"params": params, "opt_state": opt_state}))
    source.close()  # ends the batch workers
    manager.wait_until_finished()
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
    left.plot([r["step"] for r in records], [r["loss"] for r in records])
    left.set_xlabel("step")
    left.set_ylabel("token NLL (span corruption + prefix LM)")
    probes = [r for r in records if "probe_encoder" in r]
    right.plot([r["step"] for r in probes], [r["probe_encoder"] for r in probes],
               label="probe: encoder states")
    right.plot([r["step"] for r in probes], [r["probe_embeddings"] for r in probes],
               label="probe: input embeddings")
    right.set_xlabel("step")
    right.set_ylabel("SST-2 linear probe accuracy (%)")
    right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "pretrain_curve.png"), dpi=90)


def main() -> None:
    from jaxprompt.host_memory import reexec_with_malloc_tunables
    reexec_with_malloc_tunables()  # huge pages for XLA:CPU's step memory (see there)
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "shared"))
    parser.add_argument("--workdir", default=os.path.expanduser(
        "~/.cache/jaxprompt/pretrain_tiny"), help="checkpoints and logs (outside git)")
    parser.add_argument("--out", default="jaxprompt/assets/t5_tiny_lm")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --workdir (otherwise it must be empty)")
    parser.add_argument("--checkpoint_every", type=int, default=250)
    parser.add_argument("--monitor_every", type=int, default=250)
    parser.add_argument("--max_token_cosine", type=float, default=0.9)
    parser.add_argument("--no_extra_text", action="store_true",
                        help="task corpora only (no WordNet glosses or fortunes)")
    parser.add_argument("--corpus_cache", default=None,
                        help="an .npz of the tokenized corpus: read if there, else built and "
                             "written (a run on a machine without ../shared or WordNet)")
    parser.add_argument("--data_workers", type=int, default=0,
                        help="processes making batches (0: inline; an accelerator needs ~4)")
    for field in dataclasses.fields(PretrainConfig):
        default = getattr(defaults, field.name)
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(default, bool) \
            else type(default)
        parser.add_argument(f"--{field.name}", type=kind, default=default)
    args = parser.parse_args()
    pc = PretrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)})

    if not 0 <= pc.warmup_steps < pc.steps:
        sys.exit(f"--warmup_steps {pc.warmup_steps} must be below --steps {pc.steps}.")
    saved = os.path.join(args.workdir, "pretrain_config.json")
    if os.path.exists(saved):
        with open(saved) as f:
            previous = PretrainConfig(**json.load(f))
        if not args.resume:
            sys.exit(f"{args.workdir} holds a run already; pass --resume to continue it, or "
                     f"choose another --workdir.")
        if dataclasses.replace(previous, steps=pc.steps) != pc:
            sys.exit(f"--resume with other settings than {saved}: "
                     f"{dataclasses.asdict(previous)}")

    import sentencepiece

    from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY
    from jaxprompt.models.t5 import T5

    if args.corpus_cache and os.path.exists(args.corpus_cache):
        corpus = load_corpus(args.corpus_cache)
        print(f"corpus: {args.corpus_cache}", flush=True)
        if corpus["extra_text"] == args.no_extra_text:
            sys.exit(f"{args.corpus_cache} was built {'with' if corpus['extra_text'] else 'without'}"
                     f" WordNet and fortunes; run {'without' if corpus['extra_text'] else 'with'}"
                     f" --no_extra_text or give another --corpus_cache.")
    else:
        processor = sentencepiece.SentencePieceProcessor(model_file=DEFAULT_VOCABULARY)
        corpus = build_corpus(args.shared, processor, extra_text=not args.no_extra_text)
        if args.corpus_cache:
            save_corpus(args.corpus_cache, corpus)
    streams, pairs = corpus["streams"], corpus["pairs"]
    print(f"corpus: {len(streams[0]):,} task tokens, {len(streams[-1]) if len(streams) > 1 else 0:,}"
          f" other tokens, {len(pairs):,} reverse-dictionary pairs", flush=True)
    if pc.dictionary_fraction and not pairs:
        sys.exit("--dictionary_fraction needs WordNet: apt-get install wordnet-base")
    pairs = pairs if pc.dictionary_fraction else ()
    probe_ids, probe_labels = corpus["probe_ids"], corpus["probe_labels"]
    model = T5(pc.model_config())

    def monitor(step, params):
        return representation_report(model, params, probe_ids, probe_labels)

    start = time.time()
    embedding_cache = (f"{args.corpus_cache}.svd{pc.d_model}_seed{pc.seed}.npy"
                       if args.corpus_cache else None)
    params = pretrain(pc, streams, args.workdir, checkpoint_every=args.checkpoint_every,
                      monitor_every=args.monitor_every, monitor=monitor, pairs=pairs,
                      data_workers=args.data_workers, embedding_cache=embedding_cache)
    report = monitor(pc.steps, params)
    print(f"done in {(time.time() - start) / 60:.1f} min: {report}")
    if report["token_cosine"] > args.max_token_cosine:
        sys.exit(f"refusing to write {args.out}: the encoder collapsed (token cosine "
                 f"{report['token_cosine']:.3f} > {args.max_token_cosine}).")
    import jax
    write_model(args.out, pc.model_config(), jax.device_get(params), args.workdir,
                DEFAULT_VOCABULARY)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
