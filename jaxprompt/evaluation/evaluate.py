"""Predictions and task metrics of the frozen model with a trainable tree."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.data.pipeline import Lengths, encode_batch
from jaxprompt.data.tasks import TextTask
from jaxprompt.evaluation.metrics import compute_metrics
from jaxprompt.evaluation.placement import default_placement
from jaxprompt.evaluation.scoring import (
    combine_ensemble,
    decode_tokens,
    ensemble_scores,
    greedy_decode,
    score_candidates,
)
from jaxprompt.prompts.trainable import as_trainable


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[str]
    examples: list[dict]
    method: str


def predict(
    config: T5Config,
    params: dict,
    trainable,
    vocab,
    inputs: Sequence[str],
    *,
    label_names: Sequence[str] | None = None,
    method: str | None = None,
    lengths: Lengths = Lengths(),
    batch_size: int = 32,
    prompt_mode: str = "prefix",
    ensemble: str | None = None,
    ensemble_mask=None,
    mesh=None,
    with_scores: bool = False,
) -> list:
    """Predicted target strings for `inputs` (rank over label_names, or greedy decoding).

    `with_scores`: each output is (prediction, {label: log-likelihood}) instead, the
    log-likelihood of each candidate continuation (summed over its tokens; under an
    ensemble, its combined score) so users can threshold and calibrate; greedy decoding
    gives (prediction, None).

    `trainable`: the trainable tree ({"prompt", "deep_prompt"}, any subset; {} or None for
    the bare model; an array means {"prompt": it}). With `ensemble` ("vote" or "mean"),
    trainable["prompt"] is [N, P, H]: N prompts scored together; `ensemble_mask` [N, P]
    marks the real rows of prompts of different lengths (`evaluation.bank.stack_prompts`).
    `mesh`: split every batch over the mesh (`params` placed on it); on several processes
    (a pod slice) each host builds only its rows and every host gets all predictions.
    """
    trainable = as_trainable(trainable)
    prompt = trainable.get("prompt")
    method = method or ("rank" if label_names else "greedy")
    if method == "rank" and not label_names:
        raise ValueError("Rank classification needs label_names (the candidate targets).")
    if ensemble and (method != "rank" or prompt is None or np.ndim(prompt) != 3):
        raise ValueError("An ensemble needs rank classification and prompts [N, P, H].")
    if ensemble_mask is not None and not ensemble:
        raise ValueError("ensemble_mask marks the rows of an ensemble's prompts; pass ensemble.")
    if ensemble and "deep_prompt" in trainable:
        raise ValueError("Ensembles of deep prompts are not supported; ensemble prompts.")
    placement = default_placement(mesh)
    placement.check_batch(batch_size)
    trainable = placement.replicated(trainable)
    if ensemble_mask is not None:
        ensemble_mask = placement.replicated(np.asarray(ensemble_mask, bool))
    if method == "rank":
        candidates = placement.replicated(
            encode_batch(vocab, label_names, lengths.targets, targets=True)
        )

    def run(ids, index):
        if ensemble:
            scores = ensemble_scores(
                config, params, trainable["prompt"], ids, candidates, prompt_mode, ensemble_mask
            )
            scores = placement.gather(scores)
            chosen = combine_ensemble(scores, ensemble)
            if not with_scores:
                return [label_names[i] for i in chosen]
            combined = scores.mean(axis=0)  # [B, C]: the prompts' mean log-likelihood
            return [(label_names[i], _named(label_names, s)) for i, s in zip(chosen, combined)]
        if method == "rank":
            scores = score_candidates(
                config, params, trainable, ids, candidates, prompt_mode=prompt_mode
            )
            scores = placement.gather(scores)
            chosen = [label_names[i] for i in scores.argmax(axis=-1)]
            if with_scores:
                return [(c, _named(label_names, s)) for c, s in zip(chosen, scores)]
            return chosen
        tokens = greedy_decode(
            config, params, trainable, ids, lengths.targets, prompt_mode=prompt_mode
        )
        texts = decode_tokens(vocab, placement.gather(tokens))
        return [(t, None) for t in texts] if with_scores else texts

    return over_batches(vocab, inputs, batch_size, lengths.inputs, placement, run)


def _named(labels: Sequence[str], scores) -> dict[str, float]:
    """{label: log-likelihood} of one row's candidate scores [C]."""
    return {label: float(score) for label, score in zip(labels, scores)}


BUCKET = 32  # batch lengths are multiples of this: few shapes to compile


def _encoded(vocab, texts: list[str]) -> list[list[int]]:
    if hasattr(vocab, "encode_batch"):
        return vocab.encode_batch(texts)
    return [vocab.encode(text) for text in texts]


def over_batches(
    vocab,
    texts: Sequence[str],
    batch_size: int,
    inputs_length: int,
    placement,
    run: Callable[[Any, np.ndarray], list],
) -> list:
    """`run(ids, index)` on batches of `texts` (ids [batch_size, N], the last batch padded
    with empty inputs; `index` [n]: the positions in `texts` of its n real rows), the
    outputs returned in the order of `texts`. Texts are batched by token length, longest
    first, and N is the batch's longest input (EOS included) rounded up to a multiple of
    BUCKET, at most `inputs_length`: padding beyond it is masked in every family, so
    trimming it changes no output and saves its compute (length-sorted batches halve it on
    SST-2). On a pod slice each process encodes only the rows its devices hold
    (`placement`); every process sorts and sees the whole chunk, so all agree on N."""
    lengths = np.array([len(ids) + 1 for ids in _encoded(vocab, list(texts))], np.int64)
    order = np.argsort(-lengths, kind="stable")
    outputs: list = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        index = order[start : start + batch_size]
        chunk = [texts[i] for i in index] + [""] * (batch_size - len(index))
        length = min(inputs_length, -(-int(lengths[index].max()) // BUCKET) * BUCKET)
        ids = placement.rows(
            lambda rows: encode_batch(vocab, chunk[rows], length),
            (batch_size, length),
            np.int32,
        )
        for i, output in zip(index, list(run(ids, index))[: len(index)]):
            outputs[i] = output
    return outputs


def evaluate(
    config: T5Config,
    params: dict,
    trainable,
    task: TextTask,
    vocab,
    *,
    split: str = "validation",
    method: str | None = None,
    lengths: Lengths = Lengths(),
    batch_size: int = 32,
    prompt_mode: str = "prefix",
    max_examples: int | None = None,
    ensemble: str | None = None,
    ensemble_mask=None,
    mesh=None,
) -> EvalResult:
    """Task metrics of the frozen model with the trainable tree on `split`.

    method: "rank" (rank classification; default for tasks with label words) or
      "greedy" (decoding; default for generation tasks such as ReCoRD and STS-B).
    mesh: as in `predict` (multi-host: metrics computed on every host from all predictions).
    """
    examples = task.examples(split)[:max_examples]
    method = method or ("rank" if task.label_names else "greedy")
    predictions = predict(
        config,
        params,
        trainable,
        vocab,
        [e["inputs"] for e in examples],
        label_names=task.label_names,
        method=method,
        lengths=lengths,
        batch_size=batch_size,
        prompt_mode=prompt_mode,
        ensemble=ensemble,
        ensemble_mask=ensemble_mask,
        mesh=mesh,
    )
    metrics = compute_metrics(task.metrics, examples, predictions, task.label_names)
    return EvalResult(metrics, predictions, examples, method)
