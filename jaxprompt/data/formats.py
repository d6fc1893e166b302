"""GLUE and SuperGLUE examples in the paper's text-to-text format (pure Python, no TF).

Lester et al. use "the T5 formatting without the task prefix": T5's GLUE text
preprocessor joins `key: value` pairs (keys sorted unless a task fixes the order) and
puts the benchmark name first; here that first word is dropped. Targets are T5's label
words (e.g. "entailment"/"not_entailment", "False"/"True").

Each formatter maps one raw example (TFDS field names; labels as class indices) to a
list of {"inputs", "targets", "label", "group"} dicts (MultiRC and ReCoRD yield several).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

Example = dict


@dataclasses.dataclass(frozen=True)
class TaskFormat:
    name: str  # e.g. "super_glue_rte"
    benchmark: str  # "glue" or "super_glue"
    subset: str  # TFDS config name: "rte", "wsc.fixed", ...
    label_names: tuple[str, ...] | None  # target words by class index; None: free text
    metrics: tuple[str, ...]  # names in jaxprompt.evaluation.METRICS
    format: Callable[[Example], list[Example]]
    local_dir: str  # folder name in the original SuperGLUE / GLUE downloads


def _joined(example: Example, keys) -> str:
    return " ".join(f"{key}: {example[key]}" for key in keys)


def _label(label_names, label) -> str:
    return label_names[label] if label_names is not None and label >= 0 else ""


def _glue_like(keys=None, label_names=None):
    """T5's glue() text preprocessor without the benchmark-name prefix."""

    def fmt(example):
        feature_keys = keys or sorted(k for k in example if k not in ("label", "idx"))
        return [
            {
                "inputs": _joined(example, feature_keys),
                "targets": _label(label_names, int(example["label"])),
                "label": int(example["label"]),
                "group": example.get("idx", -1),
            }
        ]

    return fmt


def _stsb(example):
    """STS-B: the score rounded to the nearest 0.2 as text ("3.8")."""
    score = float(example["label"])
    return [
        {
            "inputs": _joined(example, ("sentence1", "sentence2")),
            "targets": f"{round(score * 5) / 5:.1f}",
            "label": score,
            "group": example.get("idx", -1),
        }
    ]


def _remove_markup(text: str) -> str:
    return re.sub(r"<(/)?b>", "", text.replace("<br>", " "))


def _multirc(example):
    """One example per (question, answer); T5 strips MultiRC's HTML markup."""
    text = _remove_markup(_joined(example, ("question", "answer", "paragraph")))
    label = int(example["label"])
    group = (example["idx"]["paragraph"], example["idx"]["question"])
    return [
        {
            "inputs": text,
            "targets": _label(("False", "True"), label),
            "label": label,
            "group": group,
        }
    ]


def _mark_span(text: str, span: str, word_index: int, mark: str) -> str:
    """Surrounds `span` starting at whitespace-word `word_index` with `mark` (T5's WSC)."""
    pattern = r"^((?:\S+\s){%d})(%s)" % (word_index, re.escape(span))
    return re.sub(pattern, lambda m: f"{m.group(1)}{mark} {m.group(2)} {mark}", text, count=1)


def _wsc(example):
    """WSC: span1 (the noun) marked with *, span2 (the pronoun) with #; target True/False."""
    text = _mark_span(example["text"], example["span1_text"], example["span1_index"], "*")
    span2_index = example["span2_index"] + 2 * (example["span1_index"] < example["span2_index"])
    text = _mark_span(text, example["span2_text"], span2_index, "#")
    label = int(example["label"])
    return [
        {
            "inputs": f"text: {text}",
            "targets": _label(("False", "True"), label),
            "label": label,
            "group": example.get("idx", -1),
        }
    ]


def _record(example):
    """ReCoRD: one example per answer; entities listed; "@highlight" lines joined by '. '."""
    passage = re.sub(r"([.?!\"'])\n@highlight\n", r"\1 ", example["passage"])
    passage = re.sub(r"\n@highlight\n", ". ", passage)
    entities = ", ".join(example["entities"])
    inputs = f"query: {example['query']} entities: {entities} passage: {passage}"
    answers = list(example["answers"]) or ["<unk>"]
    return [
        {
            "inputs": inputs,
            "targets": answer,
            "label": -1,
            "group": example.get("idx", -1),
            "answers": list(example["answers"]),
        }
        for answer in answers
    ]


_SUPER_GLUE = [
    TaskFormat(
        "super_glue_boolq",
        "super_glue",
        "boolq",
        ("False", "True"),
        ("accuracy",),
        _glue_like(label_names=("False", "True")),
        "BoolQ",
    ),
    TaskFormat(
        "super_glue_cb",
        "super_glue",
        "cb",
        ("entailment", "contradiction", "neutral"),
        ("mean_f1", "accuracy"),
        _glue_like(label_names=("entailment", "contradiction", "neutral")),
        "CB",
    ),
    TaskFormat(
        "super_glue_copa",
        "super_glue",
        "copa",
        ("choice1", "choice2"),
        ("accuracy",),
        _glue_like(label_names=("choice1", "choice2")),
        "COPA",
    ),
    TaskFormat(
        "super_glue_multirc",
        "super_glue",
        "multirc",
        ("False", "True"),
        ("multirc_f1a", "multirc_em"),
        _multirc,
        "MultiRC",
    ),
    TaskFormat(
        "super_glue_record",
        "super_glue",
        "record",
        None,
        ("record_em", "record_f1"),
        _record,
        "ReCoRD",
    ),
    TaskFormat(
        "super_glue_rte",
        "super_glue",
        "rte",
        ("entailment", "not_entailment"),
        ("accuracy",),
        _glue_like(label_names=("entailment", "not_entailment")),
        "RTE",
    ),
    TaskFormat(
        "super_glue_wic",
        "super_glue",
        "wic",
        ("False", "True"),
        ("accuracy",),
        _glue_like(keys=("sentence1", "sentence2", "word"), label_names=("False", "True")),
        "WiC",
    ),
    TaskFormat(
        "super_glue_wsc", "super_glue", "wsc.fixed", ("False", "True"), ("accuracy",), _wsc, "WSC"
    ),
]
_GLUE = [
    TaskFormat(
        "glue_sst2",
        "glue",
        "sst2",
        ("negative", "positive"),
        ("accuracy",),
        _glue_like(keys=("sentence",), label_names=("negative", "positive")),
        "SST-2",
    ),
    TaskFormat(
        "glue_mrpc",
        "glue",
        "mrpc",
        ("not_equivalent", "equivalent"),
        ("f1", "accuracy"),
        _glue_like(keys=("sentence1", "sentence2"), label_names=("not_equivalent", "equivalent")),
        "MRPC",
    ),
    TaskFormat(
        "glue_qqp",
        "glue",
        "qqp",
        ("not_duplicate", "duplicate"),
        ("f1", "accuracy"),
        _glue_like(keys=("question1", "question2"), label_names=("not_duplicate", "duplicate")),
        "QQP",
    ),
    TaskFormat(
        "glue_mnli",
        "glue",
        "mnli",
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        _glue_like(
            keys=("hypothesis", "premise"), label_names=("entailment", "neutral", "contradiction")
        ),
        "MNLI",
    ),
    TaskFormat(
        "glue_qnli",
        "glue",
        "qnli",
        ("entailment", "not_entailment"),
        ("accuracy",),
        _glue_like(keys=("question", "sentence"), label_names=("entailment", "not_entailment")),
        "QNLI",
    ),
    TaskFormat(
        "glue_rte",
        "glue",
        "rte",
        ("entailment", "not_entailment"),
        ("accuracy",),
        _glue_like(keys=("sentence1", "sentence2"), label_names=("entailment", "not_entailment")),
        "RTE",
    ),
    TaskFormat(
        "glue_cola",
        "glue",
        "cola",
        ("unacceptable", "acceptable"),
        ("matthews_corr",),
        _glue_like(keys=("sentence",), label_names=("unacceptable", "acceptable")),
        "CoLA",
    ),
    TaskFormat("glue_stsb", "glue", "stsb", None, ("pearson", "spearman"), _stsb, "STS-B"),
]
TASK_FORMATS: dict[str, TaskFormat] = {t.name: t for t in _SUPER_GLUE + _GLUE}
