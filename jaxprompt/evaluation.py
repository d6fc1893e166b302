"""Evaluation: rank classification, greedy decoding with a KV cache, and task metrics.

Rank classification scores every candidate target of an example (log-likelihood of its
tokens, EOS included) in one batched pass: the encoder runs once per example and its
output is repeated for the C candidates. Greedy decoding runs the decoder one token at a
time against a KV cache inside a jitted while-loop that stops when every row has emitted
EOS. Metrics come from scikit-learn / scipy, reported in percent as T5 does.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
import string
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.data.pipeline import Lengths
from jaxprompt.data.tasks import TextTask
from jaxprompt.losses import sequence_log_likelihood
from jaxprompt.models.t5 import T5

EOS_ID = 1


# ----------------------------------------------------------------------------- model calls

@functools.partial(jax.jit, static_argnames=("config", "prompt_mode"))
def score_candidates(config: T5Config, params: dict, prompt, encoder_ids: jax.Array,
                     candidates: jax.Array, prompt_mode: str = "prefix",
                     prompt_mask=None, deep_prompt=None) -> jax.Array:
    """Log-likelihood of each candidate target for each example.

    Args:
      prompt: [P, H], [B, P, H] or None.
      prompt_mask: None, or [P] / [B, P] booleans (prompts of a bank padded on the left).
      deep_prompt: None or a deep prompt (jaxprompt.deep_prompts).
      encoder_ids: [B, T] token ids (EOS-terminated, 0-padded).
      candidates: [C, S] target ids (EOS-terminated, 0-padded).
    Returns:
      [B, C] float32 sums of token log-probabilities.
    """
    model = T5(config)
    batch, num_candidates = encoder_ids.shape[0], candidates.shape[0]
    encoded, mask = model.apply({"params": params}, encoder_ids, prompt=prompt,
                                prompt_mask=prompt_mask, prompt_mode=prompt_mode,
                                deep_prompt=deep_prompt, method=T5.encode)
    encoded = jnp.repeat(encoded, num_candidates, axis=0)  # [B * C, P + T, H]
    mask = jnp.repeat(mask, num_candidates, axis=0)
    targets = jnp.tile(candidates, (batch, 1))  # [B * C, S]
    decoder_inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))  # shift right, start id 0
    logits = model.apply({"params": params}, encoded, mask, decoder_inputs,
                         deep_prompt=deep_prompt, method=T5.decode)
    scores = sequence_log_likelihood(logits, targets, targets > 0)
    return scores.reshape(batch, num_candidates)


@functools.partial(jax.jit, static_argnames=("config", "max_length", "prompt_mode"))
def greedy_decode(config: T5Config, params: dict, prompt, encoder_ids: jax.Array,
                  max_length: int, prompt_mode: str = "prefix", prompt_mask=None,
                  deep_prompt=None) -> jax.Array:
    """Greedy decoding with a KV cache: [B, T] -> tokens [B, max_length] (0 after EOS)."""
    model = T5(config)
    batch = encoder_ids.shape[0]
    encoded, mask = model.apply({"params": params}, encoder_ids, prompt=prompt,
                                prompt_mask=prompt_mask, prompt_mode=prompt_mode,
                                deep_prompt=deep_prompt, method=T5.encode)
    cache_shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), encoded, mask,
                           jnp.zeros((batch, max_length), jnp.int32), decode=True,
                           deep_prompt=deep_prompt, method=T5.decode))["cache"]
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

    def step(carry):
        i, cache, token, out, done = carry
        logits, variables = model.apply({"params": params, "cache": cache}, encoded, mask,
                                        token[:, None], decode=True, deep_prompt=deep_prompt,
                                        method=T5.decode, mutable=["cache"])
        token = jnp.where(done, 0, jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32))
        out = out.at[:, i].set(token)
        return i + 1, variables["cache"], token, out, done | (token == EOS_ID)

    def not_finished(carry):
        i, _, _, _, done = carry
        return (i < max_length) & ~jnp.all(done)

    start = jnp.zeros((batch,), jnp.int32)
    carry = (jnp.zeros((), jnp.int32), cache, start, jnp.zeros((batch, max_length), jnp.int32),
             jnp.zeros((batch,), bool))
    return jax.lax.while_loop(not_finished, step, carry)[3]


def ensemble_scores(config: T5Config, params: dict, prompts: jax.Array, encoder_ids: jax.Array,
                    candidates: jax.Array, prompt_mode: str = "prefix") -> jax.Array:
    """Candidate scores under N prompts in one batched pass: [N, P, H] -> [N, B, C].

    The batch is tiled N times and each row gets its prompt ([N * B, P, H] per-example
    prompts), so the cost is one pass over N * B rows, not N separate runs.
    """
    num_prompts, batch = prompts.shape[0], encoder_ids.shape[0]
    rows = jnp.repeat(jnp.asarray(prompts), batch, axis=0)  # [N * B, P, H]
    ids = jnp.tile(encoder_ids, (num_prompts, 1))  # [N * B, T]
    scores = score_candidates(config, params, rows, ids, candidates, prompt_mode=prompt_mode)
    return scores.reshape(num_prompts, batch, -1)


def combine_ensemble(scores: np.ndarray, how: str) -> np.ndarray:
    """[N, B, C] scores -> [B] class indices.

    vote: each prompt votes for its argmax, the most votes win (ties: the lowest class
    index), as in the paper's section 7; mean: argmax of the mean log-likelihood.
    """
    scores = np.asarray(scores)
    if how == "mean":
        return scores.mean(axis=0).argmax(axis=-1)
    if how == "vote":
        votes = np.zeros(scores.shape[1:], np.int64)
        for prompt_votes in scores.argmax(axis=-1):  # [B] per prompt
            votes[np.arange(len(prompt_votes)), prompt_votes] += 1
        return votes.argmax(axis=-1)
    raise ValueError(f"Unknown ensemble combination {how!r}; use 'vote' or 'mean'.")


# ----------------------------------------------------------------------------- tokenization

def encode_batch(vocab, texts: Sequence[str], length: int) -> np.ndarray:
    """Token ids [N, length]: truncated to length - 1, EOS appended, 0-padded."""
    out = np.zeros((len(texts), length), np.int32)
    for row, text in enumerate(texts):
        ids = list(vocab.encode(text))[: length - 1] + [EOS_ID]
        out[row, : len(ids)] = ids
    return out


def decode_tokens(vocab, tokens: np.ndarray) -> list[str]:
    texts = []
    for row in np.asarray(tokens):
        ids = row.tolist()
        ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
        texts.append(vocab.decode([i for i in ids if i > 0]))
    return texts


# ----------------------------------------------------------------------------- metrics

def _labels(examples):
    return np.asarray([e["label"] for e in examples])


def _accuracy(examples, predicted):
    return 100 * float(np.mean(_labels(examples) == np.asarray(predicted)))


def _f1(examples, predicted):
    from sklearn.metrics import f1_score
    return 100 * f1_score(_labels(examples), predicted, zero_division=0)


def _mean_f1(examples, predicted):
    from sklearn.metrics import f1_score
    labels = sorted(set(_labels(examples).tolist()))
    return 100 * f1_score(_labels(examples), predicted, average="macro", labels=labels,
                          zero_division=0)


def _matthews(examples, predicted):
    from sklearn.metrics import matthews_corrcoef
    return 100 * matthews_corrcoef(_labels(examples), predicted)


def _pearson(examples, predicted):
    from scipy.stats import pearsonr
    return 100 * pearsonr(_labels(examples).astype(float), np.asarray(predicted, float))[0]


def _spearman(examples, predicted):
    from scipy.stats import spearmanr
    return 100 * spearmanr(_labels(examples).astype(float), np.asarray(predicted, float))[0]


def _multirc_em(examples, predicted):
    """Exact match per question: every answer of the question classified right."""
    correct = collections.defaultdict(lambda: True)
    for example, prediction in zip(examples, predicted):
        correct[tuple(example["group"])] &= bool(prediction == example["label"])
    return 100 * float(np.mean(list(correct.values())))


def _normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, answer: str) -> float:
    predicted, gold = _normalize_answer(prediction).split(), _normalize_answer(answer).split()
    common = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _record_groups(examples, predicted):
    seen = {}
    for example, prediction in zip(examples, predicted):
        key = str(example["group"])
        seen.setdefault(key, (prediction, example.get("answers") or [example["targets"]]))
    return seen.values()


def _record_em(examples, predicted):
    groups = _record_groups(examples, predicted)
    return 100 * float(np.mean([max(_normalize_answer(p) == _normalize_answer(a) for a in answers)
                                for p, answers in groups]))


def _record_f1(examples, predicted):
    groups = _record_groups(examples, predicted)
    return 100 * float(np.mean([max(_token_f1(p, a) for a in answers) for p, answers in groups]))


def _exact_match(examples, predicted):
    return 100 * float(np.mean([p.strip() == e["targets"].strip()
                                for e, p in zip(examples, predicted)]))


# name -> (fn(examples, predictions), whether predictions are class indices or strings)
METRICS = {
    "accuracy": (_accuracy, "label"), "f1": (_f1, "label"), "mean_f1": (_mean_f1, "label"),
    "matthews_corr": (_matthews, "label"), "pearson": (_pearson, "float"),
    "spearman": (_spearman, "float"), "multirc_f1a": (_f1, "label"),
    "multirc_em": (_multirc_em, "label"), "record_em": (_record_em, "text"),
    "record_f1": (_record_f1, "text"), "exact_match": (_exact_match, "text"),
}


def compute_metrics(names: Sequence[str], examples: list[dict], predicted_text: list[str],
                    label_names: Sequence[str] | None) -> dict[str, float]:
    """Metrics from predicted strings (mapped to class indices or floats where needed)."""
    out = {}
    for name in names:
        fn, kind = METRICS[name]
        if kind == "label":
            index = {label: i for i, label in enumerate(label_names or ())}
            predictions = [index.get(p.strip(), -1) for p in predicted_text]
        elif kind == "float":
            predictions = [_to_float(p) for p in predicted_text]
        else:
            predictions = predicted_text
        out[name] = float(fn(examples, predictions))
    return out


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return -1.0


# ----------------------------------------------------------------------------- evaluate

@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[str]
    examples: list[dict]
    method: str


def predict(config: T5Config, params: dict, prompt, vocab, inputs: Sequence[str], *,
            label_names: Sequence[str] | None = None, method: str | None = None,
            lengths: Lengths = Lengths(), batch_size: int = 32,
            prompt_mode: str = "prefix", ensemble: str | None = None,
            deep_prompt: dict | None = None) -> list[str]:
    """Predicted target strings for `inputs` (rank over label_names, or greedy decoding).

    With `ensemble` ("vote" or "mean"), `prompt` is [N, P, H]: N prompts scored together.
    `deep_prompt` (not with an ensemble) adds per-layer keys and values.
    """
    method = method or ("rank" if label_names else "greedy")
    if method == "rank" and not label_names:
        raise ValueError("Rank classification needs label_names (the candidate targets).")
    if ensemble and (method != "rank" or prompt is None or np.ndim(prompt) != 3):
        raise ValueError("An ensemble needs rank classification and prompts [N, P, H].")
    if ensemble and deep_prompt is not None:
        raise ValueError("Ensembles of deep prompts are not supported; ensemble prompts.")
    if method == "rank":
        candidates = jnp.asarray(encode_batch(vocab, label_names, lengths.targets))
    predictions: list[str] = []
    for start in range(0, len(inputs), batch_size):
        chunk = list(inputs[start:start + batch_size])
        ids = encode_batch(vocab, chunk + [""] * (batch_size - len(chunk)), lengths.inputs)
        if ensemble:
            scores = ensemble_scores(config, params, jnp.asarray(prompt), jnp.asarray(ids),
                                     candidates, prompt_mode)
            best = combine_ensemble(scores, ensemble)[: len(chunk)]
            predictions += [label_names[i] for i in best]
        elif method == "rank":
            scores = score_candidates(config, params, prompt, jnp.asarray(ids), candidates,
                                      prompt_mode=prompt_mode, deep_prompt=deep_prompt)
            best = np.asarray(jnp.argmax(scores, axis=-1))[: len(chunk)]
            predictions += [label_names[i] for i in best]
        else:
            tokens = greedy_decode(config, params, prompt, jnp.asarray(ids), lengths.targets,
                                   prompt_mode=prompt_mode, deep_prompt=deep_prompt)
            predictions += decode_tokens(vocab, np.asarray(tokens)[: len(chunk)])
    return predictions


def evaluate(config: T5Config, params: dict, prompt, task: TextTask, vocab, *,
             split: str = "validation", method: str | None = None,
             lengths: Lengths = Lengths(), batch_size: int = 32, prompt_mode: str = "prefix",
             max_examples: int | None = None, ensemble: str | None = None,
             deep_prompt: dict | None = None) -> EvalResult:
    """Task metrics of the frozen model with `prompt` on `split`.

    method: "rank" (rank classification; default for tasks with label words) or
      "greedy" (decoding; default for generation tasks such as ReCoRD and STS-B).
    """
    examples = task.examples(split)[:max_examples]
    method = method or ("rank" if task.label_names else "greedy")
    predictions = predict(config, params, prompt, vocab, [e["inputs"] for e in examples],
                          label_names=task.label_names, method=method, lengths=lengths,
                          batch_size=batch_size, prompt_mode=prompt_mode, ensemble=ensemble,
                          deep_prompt=deep_prompt)
    metrics = compute_metrics(task.metrics, examples, predictions, task.label_names)
    return EvalResult(metrics, predictions, examples, method)
