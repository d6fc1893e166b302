"""Users' own CSV / TSV / JSONL files as a task, no code needed.

    task = jaxprompt.data.from_files(
        train="train.csv", validation="dev.csv", input_template="review: {text}",
        target_field="label", verbalizer={"0": "negative", "1": "positive"})

With a verbalizer the task is classification (rank classification over the verbalizer's
words, accuracy); without one it is generation (targets are the field's text).
"""

from __future__ import annotations

import csv
import io
import json
import os
import string

from jaxprompt.data.readers import DataError
from jaxprompt.data.tasks import TEXT_TASKS, TextTask


def read_records(path: str) -> list[tuple[int, dict]]:
    """(line number, row dict) of a .csv, .tsv or .jsonl file."""
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist.")
    extension = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte {raw[e.start]:#04x} at "
            f"offset {e.start}); jaxprompt reads UTF-8, so save the file as "
            "UTF-8."
        ) from None
    if "\x00" in text:
        raise DataError(
            f"{path}, line {text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL "
            "byte; this is not a text file."
        )
    return _parse_records(path, extension, text)


def _parse_records(path: str, extension: str, text: str) -> list[tuple[int, dict]]:
    records = []
    with io.StringIO(text, newline="") as f:
        if extension in (".jsonl", ".json"):
            for line_number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, RecursionError) as e:
                        raise DataError(
                            f"{path}, line {line_number}: not valid JSON ({str(e)[:200]})."
                        ) from None
                    if not isinstance(row, dict):
                        raise DataError(
                            f"{path}, line {line_number}: a JSON object "
                            f'({{"field": value, ...}}) per line; found a '
                            f"{type(row).__name__}."
                        )
                    records.append((line_number, row))
        elif extension in (".csv", ".tsv"):
            reader = csv.DictReader(f, delimiter="\t" if extension == ".tsv" else ",")
            if extension == ".csv" and any("\t" in name for name in reader.fieldnames or ()):
                raise DataError(
                    f"{path}: the header {reader.fieldnames} holds tabs: the file "
                    "looks tab-separated, not comma-separated; name it .tsv (or "
                    "write it with commas)."
                )
            try:
                for row in reader:
                    if None in row:
                        raise DataError(
                            f"{path}, line {reader.line_num}: more columns than "
                            f"the header {reader.fieldnames}."
                        )
                    records.append((reader.line_num, row))
            except csv.Error as e:
                raise DataError(
                    f"{path}, line {reader.line_num}: not valid {extension[1:].upper()} ({e})."
                ) from None
        else:
            raise DataError(
                f"{path}: unsupported file type {extension!r}; use .csv, .tsv or .jsonl."
            )
    return records


def _template_fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def format_records(
    path: str, input_template: str, target_field: str, verbalizer: dict[str, str] | None
) -> list[dict]:
    """Formatted examples; every missing field or unknown label is an error naming its line."""
    fields = _template_fields(input_template)
    label_names = tuple(dict.fromkeys(verbalizer.values())) if verbalizer else None
    examples = []
    for line_number, row in read_records(path):
        where = f"{path}, line {line_number}"
        missing = [f for f in fields + [target_field] if f not in row or row[f] is None]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}; the row has {sorted(row)}.")
        value = row[target_field]
        key = str(value).lower() if isinstance(value, bool) else str(value)
        if verbalizer is not None:
            if key not in verbalizer:
                raise DataError(
                    f"{where}: label {value!r} is not in the verbalizer {sorted(verbalizer)}."
                )
            target = verbalizer[key]
            label = label_names.index(target)
        else:
            target, label = key, -1
        examples.append(
            {
                "inputs": input_template.format(**row),
                "targets": target,
                "label": label,
                "group": line_number,
            }
        )
    if not examples:
        raise DataError(f"{path} holds no examples.")
    return examples


def from_files(
    train: str | None = None,
    validation: str | None = None,
    test: str | None = None,
    input_template: str = "{text}",
    target_field: str = "label",
    verbalizer: dict[str, str] | None = None,
    name: str = "user_task",
    metrics: tuple[str, ...] | None = None,
) -> TextTask:
    """Builds, registers (by name, in jaxprompt.data.TEXT_TASKS) and returns a task from
    local files. `register_seqio_task(task)` also makes it a seqio Task."""
    files = {
        split: path
        for split, path in (("train", train), ("validation", validation), ("test", test))
        if path
    }
    if not files:
        raise DataError("from_files needs at least one of train=, validation=, test=.")
    verbalizer = {str(k): v for k, v in verbalizer.items()} if verbalizer else None
    cache: dict[str, list[dict]] = {}

    def load(split: str) -> list[dict]:
        if split not in files:
            raise DataError(f"Task {name!r} has no {split!r} file (given: {sorted(files)}).")
        if split not in cache:
            cache[split] = format_records(files[split], input_template, target_field, verbalizer)
        return cache[split]

    metrics = tuple(metrics or (("accuracy",) if verbalizer else ("exact_match",)))
    recipe = {
        "files": {split: os.path.abspath(path) for split, path in files.items()},
        "input_template": input_template,
        "target_field": target_field,
        "verbalizer": verbalizer,
        "metrics": list(metrics),
    }
    task = TextTask(
        name,
        tuple(dict.fromkeys(verbalizer.values())) if verbalizer else None,
        metrics,
        load,
        tuple(files),
        recipe,
    )
    TEXT_TASKS[name] = task
    return task


def task_from_recipe(name: str, recipe: dict | None) -> TextTask:
    """The task a prompt directory names, built again from its recipe (TextTask.recipe):
    a built-in task by name, or the user's files with the same template and verbalizer."""
    from jaxprompt.data.tasks import get_task

    if not recipe or "builtin" in recipe:
        return get_task(recipe["builtin"] if recipe else name)
    missing = [path for path in recipe["files"].values() if not os.path.exists(path)]
    if missing:
        raise DataError(
            f"Task {name!r}: its files {missing} are gone; pass --task (or "
            "another task) explicitly."
        )
    return from_files(
        **recipe["files"],
        input_template=recipe["input_template"],
        target_field=recipe["target_field"],
        verbalizer=recipe["verbalizer"],
        name=name,
        metrics=tuple(recipe["metrics"]),
    )


def recipe_formatter(name: str, recipe: dict | None):
    """row -> model inputs [str, ...] for `jaxprompt predict`: the template of a user task,
    or a built-in task's own format (the row holds the dataset's fields; no label needed)."""
    from jaxprompt.data.formats import TASK_FORMATS

    if recipe and "input_template" in recipe:
        return lambda row: [recipe["input_template"].format(**row)]
    fmt = TASK_FORMATS.get((recipe or {}).get("builtin", name))
    if fmt is None:
        return None
    return lambda row: [e["inputs"] for e in fmt.format({"label": -1, "idx": -1, **row})]
