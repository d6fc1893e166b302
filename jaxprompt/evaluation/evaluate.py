"""Predictions and task metrics of the frozen model with a trainable tree."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.data.pipeline import Lengths, encode_batch
from jaxprompt.data.tasks import TextTask
from jaxprompt.evaluation.metrics import compute_metrics
from jaxprompt.evaluation.placement import default_placement
from jaxprompt.evaluation.scoring import (combine_ensemble, decode_tokens,
                                          ensemble_scores, greedy_decode, score_candidates)
from jaxprompt.prompts.trainable import as_trainable


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[str]
    examples: list[dict]
    method: str


def predict(config: T5Config, params: dict, trainable, vocab, inputs: Sequence[str], *,
            label_names: Sequence[str] | None = None, method: str | None = None,
            lengths: Lengths = Lengths(), batch_size: int = 32,
            prompt_mode: str = "prefix", ensemble: str | None = None, mesh=None) -> list[str]:
    """Predicted target strings for `inputs` (rank over label_names, or greedy decoding).

    `trainable`: the trainable tree ({"prompt", "deep_prompt"}, any subset; {} or None for
    the bare model; an array means {"prompt": it}). With `ensemble` ("vote" or "mean"),
    trainable["prompt"] is [N, P, H]: N prompts scored together.
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
    if ensemble and "deep_prompt" in trainable:
        raise ValueError("Ensembles of deep prompts are not supported; ensemble prompts.")
    placement = default_placement(mesh)
    placement.check_batch(batch_size)
    trainable = placement.replicated(trainable)
    if method == "rank":
        candidates = placement.replicated(encode_batch(vocab, label_names, lengths.targets))
    predictions: list[str] = []
    for start in range(0, len(inputs), batch_size):
        chunk = list(inputs[start:start + batch_size])
        chunk += [""] * (batch_size - len(chunk))
        # On a pod slice each process encodes only the rows its devices hold.
        ids = placement.rows(lambda rows: encode_batch(vocab, chunk[rows], lengths.inputs),
                             (batch_size, lengths.inputs), np.int32)
        real = min(batch_size, len(inputs) - start)
        if ensemble:
            scores = placement.gather(ensemble_scores(config, params, trainable["prompt"],
                                                      ids, candidates, prompt_mode))
            best = combine_ensemble(scores, ensemble)[:real]
            predictions += [label_names[i] for i in best]
        elif method == "rank":
            scores = placement.gather(score_candidates(config, params, trainable, ids,
                                                       candidates, prompt_mode=prompt_mode))
            predictions += [label_names[i] for i in scores.argmax(axis=-1)[:real]]
        else:
            tokens = placement.gather(greedy_decode(config, params, trainable, ids,
                                                    lengths.targets, prompt_mode=prompt_mode))
            predictions += decode_tokens(vocab, tokens[:real])
    return predictions


def evaluate(config: T5Config, params: dict, trainable, task: TextTask, vocab, *,
             split: str = "validation", method: str | None = None,
             lengths: Lengths = Lengths(), batch_size: int = 32, prompt_mode: str = "prefix",
             max_examples: int | None = None, ensemble: str | None = None,
             mesh=None) -> EvalResult:
    """Task metrics of the frozen model with the trainable tree on `split`.

    method: "rank" (rank classification; default for tasks with label words) or
      "greedy" (decoding; default for generation tasks such as ReCoRD and STS-B).
    mesh: as in `predict` (multi-host: metrics computed on every host from all predictions).
    """
    examples = task.examples(split)[:max_examples]
    method = method or ("rank" if task.label_names else "greedy")
    predictions = predict(config, params, trainable, vocab, [e["inputs"] for e in examples],
                          label_names=task.label_names, method=method, lengths=lengths,
                          batch_size=batch_size, prompt_mode=prompt_mode, ensemble=ensemble,
                          mesh=mesh)
    metrics = compute_metrics(task.metrics, examples, predictions, task.label_names)
    return EvalResult(metrics, predictions, examples, method)
