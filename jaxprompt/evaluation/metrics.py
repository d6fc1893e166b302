"""Task metrics in percent, as T5 reports them: accuracy, F1, MCC, correlations, MultiRC
and ReCoRD's per-question scores, exact match. Accuracy needs numpy alone; F1 and MCC
scikit-learn, the correlations scipy (`pip install 'jaxprompt[data]'`)."""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

import numpy as np


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
    return 100 * f1_score(
        _labels(examples), predicted, average="macro", labels=labels, zero_division=0
    )


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
    return 100 * float(
        np.mean(
            [
                max(_normalize_answer(p) == _normalize_answer(a) for a in answers)
                for p, answers in groups
            ]
        )
    )


def _record_f1(examples, predicted):
    groups = _record_groups(examples, predicted)
    return 100 * float(np.mean([max(_token_f1(p, a) for a in answers) for p, answers in groups]))


def _exact_match(examples, predicted):
    return 100 * float(
        np.mean([p.strip() == e["targets"].strip() for e, p in zip(examples, predicted)])
    )


# name -> (fn(examples, predictions), whether predictions are class indices or strings)
METRICS = {
    "accuracy": (_accuracy, "label"),
    "f1": (_f1, "label"),
    "mean_f1": (_mean_f1, "label"),
    "matthews_corr": (_matthews, "label"),
    "pearson": (_pearson, "float"),
    "spearman": (_spearman, "float"),
    "multirc_f1a": (_f1, "label"),
    "multirc_em": (_multirc_em, "label"),
    "record_em": (_record_em, "text"),
    "record_f1": (_record_f1, "text"),
    "exact_match": (_exact_match, "text"),
}


def compute_metrics(
    names: Sequence[str],
    examples: list[dict],
    predicted_text: list[str],
    label_names: Sequence[str] | None,
) -> dict[str, float]:
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
