"""Evaluation, prediction, inspect and serve refuse what training refuses (one check)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

import jaxprompt
from jaxprompt.cli.main import main
from jaxprompt.data.readers import DataError
from jaxprompt.data.user_files import from_files
from tests.cli_helpers import make_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = make_workdir(tmp_path_factory.mktemp("refusals"))
    (path / "in.jsonl").write_text(json.dumps({"text": "great fun"}) + "\n")
    return path


def predict(workdir, prompt, *extra):
    return main(
        [
            "predict",
            "--model",
            str(workdir / "model"),
            "--prompt",
            str(prompt),
            "--input",
            str(workdir / "in.jsonl"),
            "--output",
            str(workdir / "out.jsonl"),
            "--labels",
            "negative,positive",
            "--targets_length",
            "4",
            "--input_template",
            "{text}",
            *extra,
        ]
    )


def test_an_empty_prompt_is_refused_everywhere(workdir, tmp_path, capsys):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 16), np.float32))
    assert predict(workdir, empty, "--inputs_length", "16") == 2
    assert "an empty prompt (shape (0, 16))" in capsys.readouterr().err
    assert main(["inspect", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "an empty prompt" in err and "Traceback" not in err


def test_prompt_plus_inputs_over_the_encoder_limit_is_refused(workdir, tmp_path, capsys):
    long = tmp_path / "long.npy"
    np.save(long, np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32))
    assert predict(workdir, long, "--inputs_length", "512") == 2
    err = capsys.readouterr().err
    assert "prompt_length 1000 + inputs_length 512 exceeds max_encoder_length 1024" in err
    assert predict(workdir, long, "--inputs_length", "16") == 0  # within the limit: runs


def test_peft_adapter_without_task_type_is_read_with_a_warning(workdir, tmp_path, caplog):
    prompt = tmp_path / "p.npy"
    np.save(prompt, np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32))
    adapter = tmp_path / "adapter"
    assert (
        main(
            [
                "export",
                "--prompt",
                str(prompt),
                "--format",
                "peft",
                "--out",
                str(adapter),
                "--base_model",
                str(workdir / "model"),
            ]
        )
        == 0
    )
    with caplog.at_level(logging.WARNING):
        jaxprompt.load_prompt(adapter)
    assert "PEFT itself would" not in caplog.text  # jaxprompt's export writes task_type
    config = json.loads((adapter / "adapter_config.json").read_text())
    del config["task_type"]
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(jaxprompt.load_prompt(adapter), np.load(prompt))
    assert "task_type None, neither 'SEQ_2_SEQ_LM' (T5) nor 'CAUSAL_LM'" in caplog.text


def test_a_tab_separated_csv_names_the_delimiter(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text\tlabel\ngreat fun\t1\nbad\t0\n")
    with pytest.raises(
        DataError,
        match=r"holds tabs: the file looks tab-separated.*name it "
        r"\.tsv",
    ):
        from_files(train=str(path), name="tabs").examples("train")


def test_an_output_being_written_by_another_command_is_refused(workdir, tmp_path, capsys):
    from jaxprompt.training.run_lock import output_lock

    prompt = tmp_path / "p.npy"
    np.save(prompt, np.random.default_rng(2).normal(size=(5, 16)).astype(np.float32))
    out = workdir / "out.jsonl"
    held = output_lock(str(out), "jaxprompt predict")  # as a running predict holds it
    assert predict(workdir, prompt, "--inputs_length", "16") == 2
    assert (
        f"in use by another jaxprompt predict (jaxprompt predict: pid {os.getpid()}"
        in capsys.readouterr().err
    )
    held.release()
    assert predict(workdir, prompt, "--inputs_length", "16") == 0
    assert not (workdir / ".out.jsonl.lock").exists()  # no lock file left beside the output


@pytest.mark.parametrize("count", ["0", "-2"])
def test_plan_with_fewer_than_one_cpu_device_is_one_line(capsys, count):
    code = main(["plan", "--cpu_devices", count])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--cpu_devices {count}: give a number of devices >= 1." in err


def test_no_tpu_probe_where_there_is_no_tpu(tmp_path):
    """With libtpu installed and no TPU device, the command's process tells JAX to use the
    CPU before JAX starts (no libtpu error block); an explicit JAX_PLATFORMS is kept."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("libtpu") is None:
        pytest.skip("libtpu is not installed (the tpu extra): nothing probes for a TPU")
    if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"):
        pytest.skip("this machine has a TPU")
    code = (
        "import os\n"
        "from jaxprompt.cli import skip_absent_tpu\n"
        "skip_absent_tpu()\n"
        "print(os.environ.get('JAX_PLATFORMS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    run = lambda env: subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    ).stdout.strip()
    assert run(env) == "cpu"
    assert run({**env, "JAX_PLATFORMS": "tpu,cpu"}) == "tpu,cpu"
