"""`--download` of built-in tasks through Hugging Face `datasets`, offline: a local dataset
repository laid out as the Hub's (a README declaring one config per task) is read by the
same `datasets.load_dataset(path, config, split)` call, and its rows equal today's reader's
rows for RTE and SST-2 (the real files in ../shared)."""

from __future__ import annotations

import json

import pytest

datasets = pytest.importorskip("datasets", reason="pip install 'jaxprompt[download]'")

from jaxprompt.data import download  # noqa: E402
from jaxprompt.data.formats import TASK_FORMATS  # noqa: E402
from jaxprompt.data.readers import DataError, read_local  # noqa: E402
from jaxprompt.data.tasks import get_task, set_data_dir  # noqa: E402
from tests.conftest import shared_path  # noqa: E402

CASES = {"super_glue_rte": ("superglue", "validation"), "glue_sst2": ("", "validation")}


def _hub_like_repository(root, benchmark: str, tasks: dict[str, list[dict]]) -> str:
    """A dataset repository as the Hub serves GLUE / SuperGLUE: a README whose YAML names
    one config per task and its split files."""
    repo = root / benchmark
    lines = ["---", "configs:"]
    for config, rows in tasks.items():
        (repo / config).mkdir(parents=True)
        (repo / config / "validation.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows)
        )
        lines += [
            f"- config_name: {config}",
            "  data_files:",
            "  - split: validation",
            f"    path: {config}/validation.jsonl",
        ]
    (repo / "README.md").write_text("\n".join(lines + ["---", ""]))
    return str(repo)


@pytest.mark.parametrize("task", sorted(CASES))
def test_downloaded_rows_equal_the_local_reader(task, tmp_path, monkeypatch):
    folder, split = CASES[task]
    fmt = TASK_FORMATS[task]
    data_dir = shared_path("data", folder) if folder else shared_path("data")
    local = read_local(fmt, split, str(data_dir))
    assert len(local) > 100
    repo = _hub_like_repository(tmp_path, fmt.benchmark, {fmt.subset: local})
    monkeypatch.setitem(download.HUB_DATASETS, fmt.benchmark, repo)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    assert download.download_rows(fmt, split) == local
    # Through the task, as `--download` reaches it (no data_dir, nothing prepared).
    monkeypatch.delenv("JAXPROMPT_DATA_DIR", raising=False)
    set_data_dir(download=True)
    try:
        from jaxprompt.data import tasks

        monkeypatch.setitem(tasks._SETTINGS, "data_dir", None)
        tasks._builtin_examples.cache_clear()
        examples = get_task(task).examples(split)
        assert examples == [e for row in local for e in fmt.format(row)]
    finally:
        set_data_dir(download=False)


def test_without_download_the_error_names_the_flag(monkeypatch):
    from jaxprompt.data import tasks

    monkeypatch.setitem(tasks._SETTINGS, "data_dir", None)
    monkeypatch.setitem(tasks._SETTINGS, "download", False)
    tasks._builtin_examples.cache_clear()
    with pytest.raises(DataError, match="Pass --download"):
        get_task("super_glue_cb").examples("validation")
    tasks._builtin_examples.cache_clear()
