"""Text tasks: built-in GLUE/SuperGLUE and users' own files.

A `TextTask` yields formatted examples {"inputs", "targets", "label", "group"} per split;
jaxprompt.data.pipeline tokenizes and batches them with numpy (no TensorFlow), and
evaluation reads the same examples. `register_seqio_task` also wraps a task in a
seqio.Task (FunctionDataSource -> tokenize -> append EOS after trimming), for use in seqio
mixtures and t5x; it needs `pip install 'jaxprompt[data]'`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

from jaxprompt.data.formats import TASK_FORMATS, TaskFormat
from jaxprompt.data.readers import DataError, read_local, read_tfds
from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY, EXTRA_IDS


@dataclasses.dataclass(frozen=True)
class TextTask:
    name: str
    label_names: tuple[str, ...] | None  # candidates for rank classification; None: generate
    metrics: tuple[str, ...]
    load: Callable[[str], list[dict]]  # split -> formatted examples
    splits: tuple[str, ...] = ("train", "validation", "test")
    # How to build the task again (what a prompt directory records): {"builtin": name} or
    # from_files' arguments {"files": {split: path}, "input_template", "target_field",
    # "verbalizer", "metrics"}; None: the task cannot be rebuilt from a description.
    recipe: dict | None = None

    def examples(self, split: str) -> list[dict]:
        examples = self.load(split)
        if not examples:
            raise DataError(f"Task {self.name!r}: split {split!r} is empty.")
        return examples


TEXT_TASKS: dict[str, TextTask] = {}
_SETTINGS = {
    "data_dir": os.environ.get("JAXPROMPT_DATA_DIR"),
    "tfds_data_dir": os.environ.get("TFDS_DATA_DIR"),
    "download": False,
}


def set_data_dir(
    data_dir: str | None = None, tfds_data_dir: str | None = None, download: bool | None = None
) -> None:
    """Where built-in tasks look for local files (and prepared TFDS datasets), and whether a
    task found in neither is downloaded (jaxprompt.data.download)."""
    if data_dir is not None:
        _SETTINGS["data_dir"] = data_dir
    if tfds_data_dir is not None:
        _SETTINGS["tfds_data_dir"] = tfds_data_dir
    if download is not None:
        _SETTINGS["download"] = download
    _builtin_examples.cache_clear()


@functools.lru_cache(maxsize=None)
def _builtin_examples(task_name: str, split: str) -> tuple[dict, ...]:
    fmt: TaskFormat = TASK_FORMATS[task_name]
    raw = read_tfds(fmt, split, _SETTINGS["tfds_data_dir"])
    if raw is None:
        data_dir = _SETTINGS["data_dir"]
        if not data_dir and _SETTINGS["download"]:
            from jaxprompt.data.download import download_rows

            raw = download_rows(fmt, split)
        elif not data_dir:
            raise DataError(
                f"Task {task_name!r}: TFDS dataset {fmt.benchmark}/{fmt.subset} is not prepared "
                "locally and no data_dir is set. Pass --download (gin: train.download = True) "
                "to fetch it, or --data_dir (or JAXPROMPT_DATA_DIR) naming a folder holding "
                f"{fmt.local_dir}/ in the original "
                f"{'SuperGLUE JSONL' if fmt.benchmark == 'super_glue' else 'GLUE TSV'} layout."
            )
        else:
            raw = read_local(fmt, split, data_dir)
    return tuple(formatted for example in raw for formatted in fmt.format(example))


for _fmt in TASK_FORMATS.values():
    TEXT_TASKS[_fmt.name] = TextTask(
        _fmt.name,
        _fmt.label_names,
        _fmt.metrics,
        functools.partial(lambda name, split: list(_builtin_examples(name, split)), _fmt.name),
        recipe={"builtin": _fmt.name},
    )


def get_task(name: str) -> TextTask:
    if name not in TEXT_TASKS:
        raise DataError(
            f"Unknown task {name!r}. Built-in tasks: {', '.join(sorted(TEXT_TASKS))}; "
            "or build one from your files with jaxprompt.data.from_files(...)."
        )
    return TEXT_TASKS[name]


def check_vocabulary(vocab, config) -> None:
    """Refuses a vocabulary that does not belong to the model of `config` (T5Config or
    DecoderConfig): more ids than embedding rows, or ids reordered differently from the
    model's rows (jaxprompt.token_order)."""
    if vocab.vocab_size > config.vocab_size:
        raise DataError(
            f"The vocabulary has {vocab.vocab_size} ids but the model's embedding "
            f"has {config.vocab_size} rows: they do not belong together. Use the "
            "model's own tokenizer (spiece.model, tokenizer.json or its GGUF file)."
        )
    vocab_moves = getattr(vocab, "token_moves", ())
    model_moves = getattr(config, "token_moves", ())
    if vocab_moves != model_moves:
        raise DataError(
            f"{getattr(vocab, 'path', 'The vocabulary')}: its EOS and padding ids differ from the "
            f"model's (token moves {vocab_moves} here, {model_moves} in the model's config): "
            "they do not belong together. Use the model's own tokenizer."
        )


def register_seqio_task(task: TextTask, vocab_path: str = DEFAULT_VOCABULARY):
    """Registers (or replaces) `task` in seqio's TaskRegistry; returns the seqio.Task."""
    import numpy as np
    import seqio
    import tensorflow as tf

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del shuffle_files, seed  # Shuffling happens in seqio, after the source.
        examples = task.examples(split)
        return tf.data.Dataset.from_tensor_slices(
            {
                "inputs": np.array([e["inputs"] for e in examples], dtype=object),
                "targets": np.array([e["targets"] for e in examples], dtype=object),
                "idx": np.arange(len(examples), dtype=np.int32),
            }
        )

    vocab = seqio.SentencePieceVocabulary(vocab_path, extra_ids=EXTRA_IDS)
    features = {
        "inputs": seqio.Feature(vocab, add_eos=True, required=True),
        "targets": seqio.Feature(vocab, add_eos=True),
    }
    if task.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(task.name)
    return seqio.TaskRegistry.add(
        task.name,
        source=seqio.FunctionDataSource(dataset_fn, splits=task.splits),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
        output_features=features,
    )


def register_builtin_tasks(vocab_path: str = DEFAULT_VOCABULARY) -> None:
    """Registers every built-in task with seqio (for seqio mixtures and t5x)."""
    for task in list(TEXT_TASKS.values()):
        register_seqio_task(task, vocab_path)
