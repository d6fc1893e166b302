"""The jaxprompt command line end to end on a tiny model: train (gin), eval, predict, errors."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

import jaxprompt
from jaxprompt.cli.main import main
from jaxprompt.models.t5 import init_params
from tests.helpers import TINY


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    jaxprompt.save_hf_checkpoint(path, TINY, init_params(TINY, jax.random.key(0)))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    path = tmp_path_factory.mktemp("files")
    rows = [("a truly great film", 1), ("dull and awful", 0), ("great fun", 1), ("bad", 0)] * 4
    for name, subset in (("train.csv", rows), ("dev.csv", rows[:6])):
        (path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    (path / "inputs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in rows[:3]))
    return path


@pytest.mark.slow
def test_train_eval_predict(tmp_path, model_dir, files, capsys):
    gin_flags = [
        "--gin_file=runs/prompt_tuning.gin",
        "--gin_file=runs/user_files.gin",
        f"--gin.train.model='{model_dir}'",
        f"--gin.from_files.train='{files / 'train.csv'}'",
        f"--gin.from_files.validation='{files / 'dev.csv'}'",
        "--gin.from_files.name='cli_task'",
        "--gin.train.prompt_length=5",
        "--gin.train.batch_size=4",
        "--gin.train.inputs_length=16",
        "--gin.train.targets_length=4",
        "--gin.TrainerConfig.steps=6",
        "--gin.TrainerConfig.eval_every=3",
        "--gin.TrainerConfig.progress=False",
    ]
    output_dir = tmp_path / "run"
    assert main(["train", *gin_flags, f"--output_dir={output_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "Trained 6 steps. Best accuracy" in printed and "jaxprompt export --prompt" in printed
    info = json.loads((output_dir / "model_info.json").read_text())
    assert info["prompt_shape"] == [5, 16]
    best = sorted(os.listdir(output_dir / "best"))
    prompt = output_dir / "best" / best[0] / "prompt.npy"
    assert np.load(prompt).shape == (5, 16)
    assert (output_dir / "learning_curve.png").exists()

    # Running again resumes (nothing to do: already at step 6) instead of starting over.
    assert main(["train", *gin_flags, f"--output_dir={output_dir}"]) == 0
    assert "Trained 6 steps" in capsys.readouterr().out

    eval_json = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--model",
                model_dir,
                "--prompt",
                str(prompt),
                "--task",
                "cli_task",
                "--inputs_length",
                "16",
                "--targets_length",
                "4",
                "--output",
                str(eval_json),
            ]
        )
        == 0
    )
    result = json.loads(eval_json.read_text())
    assert result["examples"] == 6 and 0 <= result["metrics"]["accuracy"] <= 100
    assert "accuracy" in capsys.readouterr().out

    preds = tmp_path / "preds.jsonl"
    assert (
        main(
            [
                "predict",
                "--model",
                model_dir,
                "--prompt",
                str(prompt),
                "--input",
                str(files / "inputs.jsonl"),
                "--output",
                str(preds),
                "--input_template",
                "review: {text}",
                "--labels",
                "negative,positive",
                "--inputs_length",
                "16",
                "--targets_length",
                "4",
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [line["inputs"] for line in lines] == [
        "review: a truly great film",
        "review: dull and awful",
        "review: great fun",
    ]
    assert all(line["prediction"] in ("negative", "positive") for line in lines)
    capsys.readouterr()

    adapter = tmp_path / "adapter"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(output_dir),
                "--format",
                "peft",
                "--out",
                str(adapter),
                "--base_model",
                model_dir,
            ]
        )
        == 0
    )
    config_json = json.loads((adapter / "adapter_config.json").read_text())
    assert config_json["num_virtual_tokens"] == 5 and config_json["token_dim"] == 16
    assert config_json["task_type"] == "SEQ_2_SEQ_LM" and config_json["num_layers"] == 2
    np.testing.assert_array_equal(jaxprompt.load_prompt(adapter), np.load(prompt))
    capsys.readouterr()
    assert main(["inspect", str(adapter)]) == 0
    described = capsys.readouterr().out
    assert "peft prompt, shape (5, 16)" in described and "finite: True" in described
    assert main(["inspect", model_dir]) == 0
    assert "T5 checkpoint, " in capsys.readouterr().out


def test_cli_errors_are_one_clear_line(tmp_path, model_dir, capsys):
    assert (
        main(
            [
                "train",
                "--gin_file=runs/prompt_tuning.gin",
                "--gin.train.not_a_flag=1",
                f"--output_dir={tmp_path}",
            ]
        )
        == 2
    )
    assert "doesn't have a parameter named 'not_a_flag'" in capsys.readouterr().err
    bad_prompt = tmp_path / "p.npy"
    np.save(bad_prompt, np.zeros((5, 8), np.float32))
    assert (
        main(["eval", "--model", model_dir, "--prompt", str(bad_prompt), "--task", "glue_sst2"])
        == 2
    )
    assert "prompt width 8 does not match the model's d_model 16" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing"), "--task", "glue_sst2"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_nan_prompt_and_non_utf8_input_are_refused(tmp_path, model_dir, files, capsys):
    """Two defects found by trying the CLI: a prompt holding NaN was scored, and a non-UTF-8
    --input file ended in a raw UnicodeDecodeError traceback."""
    prompt = np.zeros((5, 16), np.float32)
    prompt[3, 7] = np.nan
    nan_prompt = tmp_path / "nan.npy"
    np.save(nan_prompt, prompt)
    assert (
        main(["eval", "--model", model_dir, "--prompt", str(nan_prompt), "--task", "glue_sst2"])
        == 2
    )
    err = capsys.readouterr().err
    assert "nan.npy" in err and "row 3, column 7" in err and "non-finite" in err
    latin1 = tmp_path / "inputs.jsonl"
    latin1.write_bytes('{"text": "ok"}\n{"text": "caf\u00e9 cr\u00e8me"}\n'.encode("latin-1"))
    assert (
        main(
            [
                "predict",
                "--model",
                model_dir,
                "--input",
                str(latin1),
                "--output",
                str(tmp_path / "out.jsonl"),
                "--input_template",
                "{text}",
                "--labels",
                "negative,positive",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "inputs.jsonl, line 2: not UTF-8 text" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_prefix_tuning_train_eval_and_export_refusal(tmp_path, model_dir, files, capsys):
    output_dir = tmp_path / "prefix"
    assert (
        main(
            [
                "train",
                "--gin_file=runs/deep_prompt_tuning.gin",
                "--gin_file=runs/user_files.gin",
                f"--gin.train.model='{model_dir}'",
                f"--gin.from_files.train='{files / 'train.csv'}'",
                f"--gin.from_files.validation='{files / 'dev.csv'}'",
                "--gin.from_files.name='cli_prefix_task'",
                "--gin.train.deep_prompt_length=3",
                "--gin.train.batch_size=4",
                "--gin.train.inputs_length=16",
                "--gin.train.targets_length=4",
                "--gin.TrainerConfig.steps=2",
                "--gin.TrainerConfig.eval_every=2",
                "--gin.TrainerConfig.progress=False",
                f"--output_dir={output_dir}",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Deep prompt: " in printed and "Prompt: " not in printed
    step_dir = output_dir / "best" / "2"
    assert not (step_dir / "prompt.npy").exists()
    info = json.loads((output_dir / "model_info.json").read_text())
    assert info["prompt_shape"] is None and info["deep_prompt_shapes"]["encoder_key"][1] == 3

    eval_json = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--model",
                model_dir,
                "--deep_prompt",
                str(step_dir / "deep_prompt.npz"),
                "--task",
                "cli_prefix_task",
                "--inputs_length",
                "16",
                "--targets_length",
                "4",
                "--output",
                str(eval_json),
            ]
        )
        == 0
    )
    assert json.loads(eval_json.read_text())["examples"] == 6
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(output_dir),
                "--format",
                "peft",
                "--out",
                str(tmp_path / "adapter"),
            ]
        )
        == 2
    )
    assert "a deep prompt alone cannot be exported" in capsys.readouterr().err


def test_inspect_prompt_with_model_names_its_nearest_tokens(tmp_path, model_dir, capsys):
    from jaxprompt.data import vocabulary

    embedding = np.asarray(jaxprompt.load_pretrained(model_dir)[1]["token_embedder"]["embedding"])
    word_ids = [vocabulary().encode("positive")[0], vocabulary().encode("movie")[0]]
    prompt_path = tmp_path / "two_words.npy"
    np.save(prompt_path, 3.0 * embedding[word_ids])  # cosine ignores the scale
    heatmap = tmp_path / "heat.png"
    assert (
        main(
            [
                "inspect",
                str(prompt_path),
                "--model",
                model_dir,
                "--neighbours",
                "1",
                "--heatmap",
                str(heatmap),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.strip()[:2] in ("0:", "1:")]
    assert "shape (2, 16)" in lines[0]
    assert "positive (1.00)" in rows[0] and "movie (1.00)" in rows[1], rows
    assert heatmap.exists()
    np.save(prompt_path, np.zeros((2, 8), np.float32))
    assert main(["inspect", str(prompt_path), "--model", model_dir]) == 2
    assert "prompt width 8 does not match the model's d_model 16" in capsys.readouterr().err


def test_inspect_t5x_model_checkpoint_is_described_as_a_model(capsys):
    from tests.conftest import shared_path

    path = shared_path(
        "fixtures", "t5x_checkpoint", "t5x_test_t5_tiny", "test_t5_tiny.checkpoint_0"
    )
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "T5 checkpoint, " in out and "d_model" in out and " 8\n" in out


def test_the_command_entry_point_runs_as_python_m_jaxprompt():
    """`python -m jaxprompt` goes through jaxprompt.cli.run, the console script's entry point
    (host_memory's re-exec included where it applies), and prints the version."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jaxprompt", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert out.stdout.strip() == jaxprompt.__version__
