"""The pretraining corpus: training-split task text (SST-2 train minus a held-apart probe set,
SuperGLUE RTE/WSC train, FewGLUE train32) and English prose that Debian packages ship
(WordNet 3.0 glosses, fortune cookies) when installed; never SST-2 validation/test text and
never a label. Tokenized into EOS-separated streams, with a PPMI-SVD initial embedding.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from jaxprompt.data.vocabulary import EOS_ID as EOS
from jaxprompt.pretraining.config import PROBE_ROWS


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
                for key in (
                    "premise",
                    "hypothesis",
                    "passage",
                    "question",
                    "text",
                    "sentence1",
                    "sentence2",
                    "choice1",
                    "choice2",
                ):
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
                lemmas = [
                    re.sub(r"\(.*\)$", "", w).replace("_", " ")
                    for w in parts[4 : 4 + 2 * count : 2]
                ]
                synsets.append((lemmas, gloss.strip()))
    return synsets


def wordnet_texts(directory: str = "/usr/share/wordnet") -> list[str]:
    """'lemma, lemma: gloss; "example"' for every WordNet 3.0 synset."""
    return [f"{', '.join(lemmas)}: {gloss}" for lemmas, gloss in wordnet_synsets(directory)]


def dictionary_pairs(
    processor, directory: str = "/usr/share/wordnet", max_target: int = 8
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


def svd_embedding(streams, vocab_size: int, dim: int, seed: int = 0, window: int = 4) -> np.ndarray:
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
    counts = (
        sparse.coo_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
            shape=(vocab_size, vocab_size),
        )
        .tocsr()
        .tocoo()
    )
    total = counts.data.sum()
    row_sum = np.bincount(counts.row, counts.data, vocab_size)
    context = np.bincount(counts.col, counts.data, vocab_size) ** 0.75
    context *= total / context.sum()
    pmi = np.log(counts.data * total / (row_sum[counts.row] * context[counts.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix(
        (pmi[keep], (counts.row[keep], counts.col[keep])), shape=(vocab_size, vocab_size)
    )
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
    return {
        "streams": streams,
        "pairs": dictionary_pairs(processor) if extra_text else [],
        "probe_ids": encode_rows(processor, [s for s, _ in probe_rows]),
        "probe_labels": np.asarray([label for _, label in probe_rows]),
        "extra_text": len(streams) > 1,
    }


def save_corpus(path: str, corpus: dict) -> None:
    """One compressed .npz (token ids as uint16: the vocabulary has 32,128 ids)."""
    pairs = corpus["pairs"]
    ragged = lambda parts: (
        np.concatenate(parts).astype(np.uint16) if parts else np.zeros(0, np.uint16),
        np.cumsum([0] + [len(p) for p in parts]),
    )
    pair_inputs, input_offsets = ragged([a for a, _ in pairs])
    pair_targets, target_offsets = ragged([b for _, b in pairs])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(
        path,
        **{f"stream_{i}": s.astype(np.uint16) for i, s in enumerate(corpus["streams"])},
        pair_inputs=pair_inputs,
        input_offsets=input_offsets,
        pair_targets=pair_targets,
        target_offsets=target_offsets,
        probe_ids=corpus["probe_ids"],
        probe_labels=corpus["probe_labels"],
    )


def load_corpus(path: str) -> dict:
    with np.load(path) as f:
        streams = [f[f"stream_{i}"].astype(np.int32) for i in range(2) if f"stream_{i}" in f]
        split = lambda values, offsets: [
            values[a:b].astype(np.int32) for a, b in zip(offsets[:-1], offsets[1:])
        ]
        pairs = list(
            zip(
                split(f["pair_inputs"], f["input_offsets"]),
                split(f["pair_targets"], f["target_offsets"]),
            )
        )
        return {
            "streams": streams,
            "pairs": pairs,
            "probe_ids": f["probe_ids"],
            "probe_labels": f["probe_labels"],
            "extra_text": len(streams) > 1,
        }


def encode_rows(processor, sentences: list[str], length: int = 48) -> np.ndarray:
    ids = np.zeros((len(sentences), length), np.int32)
    for i, seq in enumerate(processor.encode(sentences)):
        seq = (seq + [EOS])[:length]
        ids[i, : len(seq)] = seq
    return ids
