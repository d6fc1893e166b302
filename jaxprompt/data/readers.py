"""Raw GLUE / SuperGLUE examples from TFDS (when prepared locally) or the original files.

Local layouts (the official downloads): SuperGLUE `<data_dir>/<RTE|rte>/{train,val,test}.jsonl`
and GLUE `<data_dir>/<SST-2|sst2>/{train,dev,test}.tsv`. Raw examples use TFDS field names
with labels as class indices (-1 when unlabelled), so one formatter serves both sources.
"""

from __future__ import annotations

import csv
import json
import os

from jaxprompt.data.formats import TaskFormat

SPLIT_FILES = {
    "super_glue": {"train": "train.jsonl", "validation": "val.jsonl", "test": "test.jsonl"},
    "glue": {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
}


class DataError(ValueError):
    """Data that cannot be read or formatted; the message names file, line and field."""


def _label_index(label_names, value, where: str) -> int:
    if value is None or value == "" or value == -1:
        return -1
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value)
    if label_names and text in label_names:
        return label_names.index(text)
    if text.lstrip("-").isdigit():
        return int(text)
    if text.lower() in ("true", "false"):
        return int(text.lower() == "true")
    raise DataError(f"{where}: label {value!r} is not one of {label_names}.")


def _require(row: dict, keys, where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; the line has {sorted(row)}.")


def _super_glue_rows(fmt: TaskFormat, path: str):
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e}).") from e
            yield from _super_glue_examples(fmt, row, where)


def _super_glue_examples(fmt: TaskFormat, row: dict, where: str):
    subset = fmt.subset
    labels = fmt.label_names
    idx = row.get("idx", -1)
    if subset == "multirc":
        _require(row, ("passage",), where)
        for question in row["passage"]["questions"]:
            for answer in question["answers"]:
                yield {
                    "paragraph": row["passage"]["text"],
                    "question": question["question"],
                    "answer": answer["text"],
                    "label": _label_index(labels, answer.get("label"), where),
                    "idx": {"paragraph": idx, "question": question["idx"], "answer": answer["idx"]},
                }
    elif subset == "record":
        _require(row, ("passage", "qas"), where)
        text = row["passage"]["text"]
        entities = sorted({text[e["start"] : e["end"] + 1] for e in row["passage"]["entities"]})
        for qa in row["qas"]:
            yield {
                "passage": text,
                "query": qa["query"],
                "entities": entities,
                "answers": sorted({a["text"] for a in qa.get("answers", [])}),
                "idx": {"passage": idx, "query": qa["idx"]},
            }
    elif subset == "wsc.fixed":
        _require(row, ("text", "target"), where)
        target = row["target"]
        yield {
            "text": row["text"],
            "span1_index": target["span1_index"],
            "span1_text": target["span1_text"],
            "span2_index": target["span2_index"],
            "span2_text": target["span2_text"],
            "label": _label_index(labels, row.get("label"), where),
            "idx": idx,
        }
    else:
        keys = {
            "boolq": ("question", "passage"),
            "cb": ("premise", "hypothesis"),
            "copa": ("premise", "choice1", "choice2", "question"),
            "rte": ("premise", "hypothesis"),
            "wic": ("sentence1", "sentence2", "word"),
        }[subset]
        _require(row, keys, where)
        example = {k: row[k] for k in keys}
        example.update(label=_label_index(labels, row.get("label"), where), idx=idx)
        yield example


# GLUE TSV columns: (input fields by column name or index, label column or None).
_GLUE_COLUMNS = {
    "sst2": ({"sentence": "sentence"}, "label"),
    "mrpc": ({"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality"),
    "qqp": ({"question1": "question1", "question2": "question2"}, "is_duplicate"),
    "mnli": ({"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label"),
    "qnli": ({"question": "question", "sentence": "sentence"}, "label"),
    "rte": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "label"),
    "stsb": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "score"),
    "cola": ({"sentence": 3}, 1),  # CoLA has no header: source, label, original, sentence.
}


def _glue_rows(fmt: TaskFormat, path: str):
    fields, label_column = _GLUE_COLUMNS[fmt.subset]
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = None if isinstance(label_column, int) else next(reader)
        for line_number, cells in enumerate(reader, 2 if header else 1):
            where = f"{path}, line {line_number}"
            row = dict(zip(header, cells)) if header else dict(enumerate(cells))
            if header and len(cells) != len(header):
                raise DataError(f"{where}: {len(cells)} columns, the header has {len(header)}.")
            _require(row, list(fields.values()), where)
            example = {name: row[column].strip() for name, column in fields.items()}
            label = row.get(label_column)
            if fmt.subset == "stsb":
                example["label"] = float(label) if label not in (None, "") else -1.0
            else:
                example["label"] = _label_index(fmt.label_names, label, where)
            example["idx"] = line_number
            yield example


def local_task_dir(fmt: TaskFormat, data_dir: str) -> str | None:
    """The folder of `fmt` under data_dir (official name, TFDS name, or lower case)."""
    candidates = [
        fmt.local_dir,
        fmt.local_dir.lower(),
        fmt.subset,
        fmt.subset.split(".")[0],
        fmt.local_dir.lower().replace("-", ""),
    ]
    for name in candidates:
        path = os.path.join(data_dir, name)
        if os.path.isdir(path):
            return path
    return None


def read_local(fmt: TaskFormat, split: str, data_dir: str) -> list[dict]:
    directory = local_task_dir(fmt, data_dir)
    if directory is None:
        raise DataError(
            f"No folder for {fmt.name} under {data_dir} (looked for "
            f"{fmt.local_dir!r} or {fmt.subset!r})."
        )
    if split not in SPLIT_FILES[fmt.benchmark]:
        raise DataError(f"Unknown split {split!r}; use one of {list(SPLIT_FILES[fmt.benchmark])}.")
    path = os.path.join(directory, SPLIT_FILES[fmt.benchmark][split])
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist: {fmt.name} has no {split!r} split in {directory}.")
    rows = _super_glue_rows if fmt.benchmark == "super_glue" else _glue_rows
    return list(rows(fmt, path))


def read_tfds(fmt: TaskFormat, split: str, tfds_data_dir: str | None) -> list[dict] | None:
    """Examples from a locally prepared TFDS dataset, or None if it is not prepared."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    try:
        builder = tfds.builder(f"{fmt.benchmark}/{fmt.subset}", data_dir=tfds_data_dir)
        if not os.path.isdir(builder.data_dir) or not builder.info.splits:
            return None
        dataset = builder.as_dataset(split=split)
    except Exception:  # Not prepared, or TFDS cannot locate it offline.
        return None

    def decode(value):
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if hasattr(value, "tolist"):
            return decode(value.tolist())
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return [decode(example) for example in tfds.as_numpy(dataset)]
