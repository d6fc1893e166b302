"""Evaluation: model calls (`scoring`), task metrics (`metrics`), predict / evaluate."""

from jaxprompt.evaluation.evaluate import EvalResult, evaluate, predict
from jaxprompt.evaluation.metrics import compute_metrics
from jaxprompt.data.pipeline import encode_batch
from jaxprompt.evaluation.scoring import (
    combine_ensemble,
    decode_tokens,
    ensemble_scores,
    greedy_decode,
    score_candidates,
    score_own_candidates,
)

__all__ = [
    "EvalResult",
    "combine_ensemble",
    "compute_metrics",
    "decode_tokens",
    "encode_batch",
    "ensemble_scores",
    "evaluate",
    "greedy_decode",
    "predict",
    "score_candidates",
    "score_own_candidates",
]
