"""Built-in tasks downloaded on request (`--download`, gin `train.download = True`).

Order: Hugging Face `datasets` first (the Hub's GLUE and SuperGLUE datasets, cached under
HF_HOME; a pip-only dependency, no TensorFlow), then TFDS's `download_and_prepare` when only
tensorflow_datasets is installed. Both give rows in TFDS's schema (the field names and class
indices the formatters in jaxprompt.data.formats read), so a downloaded task formats exactly
as the local files and a prepared TFDS dataset do.
"""

from __future__ import annotations

from jaxprompt.data.formats import TaskFormat
from jaxprompt.data.readers import DataError

HUB_DATASETS = {"glue": "nyu-mll/glue", "super_glue": "aps/super_glue"}


def hub_dataset(fmt: TaskFormat) -> tuple[str, str]:
    """(Hub dataset, config) of a built-in task, e.g. ("aps/super_glue", "rte")."""
    return HUB_DATASETS[fmt.benchmark], fmt.subset


def rows_from_dataset(dataset) -> list[dict]:
    """A `datasets.Dataset` of a GLUE / SuperGLUE config as TFDS-schema row dicts (the Hub's
    datasets use TFDS's field names and class indices; -1 for unlabelled test rows)."""
    return [dict(row) for row in dataset]


def download_rows(fmt: TaskFormat, split: str) -> list[dict]:
    """Rows of `split`, downloaded (or read from the local cache) by datasets or TFDS."""
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is not None:
        path, config = hub_dataset(fmt)
        try:
            return rows_from_dataset(datasets.load_dataset(path, config, split=split))
        except (ConnectionError, FileNotFoundError, ValueError) as e:
            raise DataError(
                f"Task {fmt.name!r}: datasets.load_dataset({path!r}, {config!r}, "
                f"split={split!r}) failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]})."
            ) from None
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            f"Task {fmt.name!r}: --download needs Hugging Face datasets (pip "
            "install 'jaxprompt[download]') or tensorflow_datasets."
        ) from None
    from jaxprompt.data.readers import read_tfds

    builder = tfds.builder(f"{fmt.benchmark}/{fmt.subset}")
    builder.download_and_prepare()
    return read_tfds(fmt, split, None) or []
