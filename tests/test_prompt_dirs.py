"""Self-describing prompt directories: what training writes, and eval, predict, serve,
inspect and export reading it instead of flags (against the scorer called directly)."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

import jaxprompt
from jaxprompt.checkpoints import load_pretrained
from jaxprompt.checkpoints.fingerprints import content_fingerprint
from jaxprompt.cli.main import main
from jaxprompt.data.pipeline import encode_batch
from jaxprompt.data.vocabulary import vocabulary
from jaxprompt.evaluation.scoring import score_candidates
from jaxprompt.prompts.artifact import INFO_FILE, read_prompt
from tests.cli_helpers import assert_peft_logits_match, gin_flags, make_workdir

LABELS = ["negative", "positive"]
TEXTS = ["a truly great film", "dull and awful", "great fun", "bad", "great", "awful film"]


def _train(workdir, name: str, mode: str):
    output_dir = workdir / name
    assert (
        main(
            [
                "train",
                *gin_flags(
                    workdir,
                    f"--gin.StepConfig.prompt_mode='{mode}'",
                    f"--gin.from_files.name='{name}'",
                    "--gin.TrainerConfig.steps=4",
                    "--gin.TrainerConfig.eval_every=2",
                ),
                f"--output_dir={output_dir}",
            ]
        )
        == 0
    )
    best = output_dir / "best" / sorted(os.listdir(output_dir / "best"))[-1]
    return output_dir, best


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs of the tiny model on the 2-label task: placements prefix and
    prefix_after_bos; and an inputs file holding only the task's field."""
    workdir = make_workdir(tmp_path_factory.mktemp("dirs"))
    (workdir / "inputs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return (
        workdir,
        _train(workdir, "plain_run", "prefix"),
        _train(workdir, "bos_run", "prefix_after_bos"),
    )


def _scores(workdir, prompt, mode) -> np.ndarray:
    """The reference: score_candidates called directly on the task's formatted inputs."""
    config, params = load_pretrained(str(workdir / "model"))
    vocab = vocabulary()
    ids = encode_batch(vocab, [f"review: {t}" for t in TEXTS], 16)
    return np.asarray(
        score_candidates(
            config,
            params,
            {"prompt": prompt},
            ids,
            encode_batch(vocab, LABELS, 4),
            prompt_mode=mode,
        )
    )


@pytest.mark.slow
def test_every_prompt_directory_describes_itself(runs):
    workdir, (plain_dir, plain_best), (_, bos_best) = runs
    config, params = load_pretrained(str(workdir / "model"))
    info = json.loads((plain_best / INFO_FILE).read_text())
    assert info["model"]["path"] == str(workdir / "model")
    assert info["model"]["fingerprint"] == content_fingerprint(params)
    assert info["model"]["architecture"]["d_model"] == 16
    assert info["prompt_mode"] == "prefix" and info["labels"] == LABELS
    assert info["task"]["name"] == "plain_run"
    assert info["task"]["recipe"]["input_template"] == "review: {text}"
    assert info["decoding"] == "rank" and info["lengths"] == {"inputs": 16, "targets": 4}
    assert info["step"] == int(plain_best.name) and info["selected_on"]["metric"] == "accuracy"
    assert info["trainable"] == {"prompt": [5, 16]} and info["method"] == "prompt_tuning"
    for name in ("adapter_config.json", "adapter_model.safetensors", "prompt.npy"):
        assert (plain_best / name).exists(), name
    latest = plain_dir / "checkpoints" / "4"
    assert json.loads((latest / INFO_FILE).read_text())["selected_on"] is None
    # PEFT always prepends: a prefix_after_bos prompt gets no adapter files to be misused by.
    assert json.loads((bos_best / INFO_FILE).read_text())["prompt_mode"] == "prefix_after_bos"
    assert not (bos_best / "adapter_config.json").exists()
    artifact = read_prompt(plain_dir)  # a run's output directory: its best prompt
    np.testing.assert_array_equal(artifact.prompt, np.load(plain_best / "prompt.npy"))


@pytest.mark.slow
def test_after_bos_prompt_scores_the_same_in_eval_predict_and_serve(runs, tmp_path):
    workdir, (_, plain_best), (bos_dir, bos_best) = runs
    prompt = np.load(bos_best / "prompt.npy")
    reference = _scores(workdir, prompt, "prefix_after_bos")
    assert not np.allclose(reference, _scores(workdir, prompt, "prefix"), atol=1e-4), (
        "the placement must matter for this test to mean anything"
    )

    # eval with the directory alone: the trainer's own validation accuracy, same placement.
    out = tmp_path / "eval.json"
    assert main(["eval", "--prompt", str(bos_dir), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    trained = json.loads((bos_best / INFO_FILE).read_text())["selected_on"]["value"]
    assert result["prompt_mode"] == "prefix_after_bos" and result["examples"] == 6
    assert result["metrics"]["accuracy"] == pytest.approx(trained)

    predictions = tmp_path / "predictions.jsonl"
    assert (
        main(
            [
                "predict",
                "--prompt",
                str(bos_best),
                "--input",
                str(workdir / "inputs.jsonl"),
                "--output",
                str(predictions),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [r["prediction"] for r in rows] == [LABELS[i] for i in reference.argmax(-1)]
    written = np.array([[r["log_likelihoods"][label] for label in LABELS] for r in rows])
    np.testing.assert_allclose(written, reference, atol=1e-4)

    # The server, one mixed batch of both placements, labels from the directories.
    from jaxprompt.serving.runner import Example
    from jaxprompt.serving.server import PromptServer, ServeConfig

    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copytree(bos_best, bank / "bos")
    shutil.copytree(plain_best, bank / "plain")
    config, params = load_pretrained(str(workdir / "model"))
    server = PromptServer(
        config,
        params,
        vocabulary(),
        ServeConfig(
            max_batch=16,
            inputs_length=16,
            targets_length=4,
            max_prompt_length=8,
            length_buckets=(16,),
        ),
    )
    server.load_bank_directory(str(bank))
    snapshot = server.registry.snapshot()
    assert snapshot.tasks["bos"].labels == tuple(LABELS)
    assert snapshot.tasks["bos"].prompt_mode == "prefix_after_bos"
    ids = encode_batch(vocabulary(), [f"review: {t}" for t in TEXTS], 16)
    examples = [
        Example(task, row[: int((row > 0).sum())]) for row in ids for task in ("bos", "plain")
    ]
    results = server.runner.run(snapshot, examples)
    plain = _scores(workdir, np.load(plain_best / "prompt.npy"), "prefix")
    for i, result in enumerate(results):
        expected = (reference if i % 2 == 0 else plain)[i // 2]
        np.testing.assert_allclose([result.scores[label] for label in LABELS], expected, atol=1e-4)


def test_predict_from_a_directory_equals_the_flags_it_replaces(runs, tmp_path, capsys):
    workdir, (_, plain_best), _ = runs
    short, long = tmp_path / "short.jsonl", tmp_path / "long.jsonl"
    assert (
        main(
            [
                "predict",
                "--prompt",
                str(plain_best),
                "--input",
                str(workdir / "inputs.jsonl"),
                "--output",
                str(short),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "predict",
                "--model",
                str(workdir / "model"),
                "--prompt",
                str(plain_best / "prompt.npy"),
                "--input",
                str(workdir / "inputs.jsonl"),
                "--output",
                str(long),
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
    assert short.read_text() == long.read_text()
    assert json.loads(short.read_text().splitlines()[0])["inputs"] == "review: a truly great film"
    capsys.readouterr()
    # A flag that overrides the prompt says so, naming both values.
    assert (
        main(
            [
                "predict",
                "--prompt",
                str(plain_best),
                "--input",
                str(workdir / "inputs.jsonl"),
                "--output",
                str(long),
                "--labels",
                "bad,good",
            ]
        )
        == 0
    )
    assert (
        "--labels ('bad', 'good') overrides the prompt's labels ('negative', 'positive')"
        in capsys.readouterr().err
    )


def test_a_prompt_is_refused_with_another_model_or_vocabulary(runs, tmp_path, capsys):
    workdir, (_, plain_best), _ = runs
    config, params = load_pretrained(str(workdir / "model"))
    # The same weights in bfloat16 are the same model; a perturbed copy is another.
    jaxprompt.save_hf_checkpoint(
        tmp_path / "bf16", config, jax.tree.map(lambda x: x.astype("bfloat16"), params)
    )
    perturbed = jax.tree.map(lambda x: x, params)
    perturbed["encoder"]["layers_0"]["mlp"]["wo"]["kernel"] = (
        params["encoder"]["layers_0"]["mlp"]["wo"]["kernel"] * 1.01
    )
    jaxprompt.save_hf_checkpoint(tmp_path / "other", config, perturbed)
    command = ["eval", "--prompt", str(plain_best), "--output", str(tmp_path / "e.json")]
    assert main([*command, "--model", str(tmp_path / "bf16")]) == 0
    capsys.readouterr()
    assert main([*command, "--model", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--allow_other_model" in error
    info = json.loads((plain_best / INFO_FILE).read_text())
    assert info["model"]["fingerprint"] in error
    _, other_params = load_pretrained(str(tmp_path / "other"))
    assert content_fingerprint(other_params) in error
    assert main([*command, "--model", str(tmp_path / "other"), "--allow_other_model"]) == 0
    # A bank's prompt directories are checked the same way.
    (tmp_path / "bank").mkdir()
    shutil.copytree(plain_best, tmp_path / "bank" / "plain")
    (tmp_path / "mixed.jsonl").write_text(json.dumps({"task": "plain", "text": "bad"}) + "\n")
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "other"),
                "--prompt_bank",
                str(tmp_path / "bank"),
                "--input",
                str(tmp_path / "mixed.jsonl"),
                "--output",
                str(tmp_path / "p.jsonl"),
                "--input_template",
                "review: {text}",
            ]
        )
        == 2
    )
    assert "--allow_other_model" in capsys.readouterr().err

    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS * 20),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=30,
        model_type="char",
        minloglevel=2,
    )
    capsys.readouterr()
    assert main([*command, "--vocabulary", str(tmp_path / "sp.model")]) == 2
    error = capsys.readouterr().err
    assert "--allow_other_vocabulary" in error and "sp.model" in error


def test_inspect_export_and_bare_files(runs, tmp_path, capsys):
    workdir, (plain_dir, plain_best), (_, bos_best) = runs
    assert main(["inspect", str(bos_best)]) == 0
    out = capsys.readouterr().out
    assert "placement    prefix_after_bos" in out and "labels       negative, positive" in out
    bare = tmp_path / "bare.npy"
    shutil.copy(plain_best / "prompt.npy", bare)
    assert main(["inspect", str(bare)]) == 0
    assert (
        "not recorded: model, vocabulary, placement (assumed 'prefix')" in capsys.readouterr().out
    )
    # Exports carry jaxprompt.json; PEFT refuses a placement it does not have.
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(plain_dir),
                "--format",
                "peft",
                "--out",
                str(tmp_path / "peft"),
            ]
        )
        == 0
    )
    exported = read_prompt(tmp_path / "peft")
    assert exported.info == read_prompt(plain_best).info
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(workdir / "model")
    capsys.readouterr()
    assert (
        main(
            ["export", "--prompt", str(bos_best), "--format", "peft", "--out", str(tmp_path / "no")]
        )
        == 2
    )
    assert "placement 'prefix_after_bos'" in capsys.readouterr().err
    # A shared directory is data: escape sequences are shown escaped, huge fields cut short.
    crafted = tmp_path / "crafted"
    shutil.copytree(plain_best, crafted)
    info = json.loads((crafted / INFO_FILE).read_text())
    info["labels"] = ["\x1b]0;pwned\x07\x1b[2Kneg", "positive"]
    info["method"] = "x" * 10_000_000
    (crafted / INFO_FILE).write_text(json.dumps(info))
    assert main(["inspect", str(crafted)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and len(out) < 20_000
    assert "\\x1b]0;pwned\\x07\\x1b[2Kneg, positive" in out
    assert "(10,000,000 characters)" in out


def test_the_written_adapter_loads_in_real_peft_with_the_same_logits(runs):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    workdir, (_, plain_best), _ = runs
    vocab = vocabulary()
    ids = encode_batch(vocab, [f"review: {t}" for t in TEXTS[:2]], 16)
    labels = encode_batch(vocab, ["positive", "negative"], 4)
    decoder_ids = np.pad(labels[:, :-1], ((0, 0), (1, 0)))  # shifted right, start id 0
    assert_peft_logits_match(workdir / "model", plain_best, ids, decoder_ids)


def test_serve_a_bank_of_prompt_directories_without_model_or_labels(runs, tmp_path):
    """`jaxprompt serve --prompt_bank DIR` (no --model, no bank.json); a PUT of a prompt
    directory without "labels" takes the directory's own."""
    import re
    import subprocess
    import sys
    import urllib.request

    workdir, (_, plain_best), (_, bos_best) = runs
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copytree(plain_best, bank / "plain")
    shutil.copytree(bos_best, bank / "later")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jaxprompt",
            "serve",
            "--prompt_bank",
            str(bank),
            "--port",
            "0",
            "--inputs_length",
            "16",
            "--targets_length",
            "4",
            "--batch_buckets",
            "8",
            "--length_buckets",
            "16",
            "--max_batch",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )

    def call(url, method, body):
        request = urllib.request.Request(
            url,
            json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    try:
        url = next(
            (
                m.group(1)
                for line in process.stdout
                if (m := re.search(r"listening on (http://\S+)", line))
            ),
            None,
        )
        assert url, "the server did not start"
        answer = call(url + "/v1/predict", "POST", {"task": "plain", "inputs": ["review: bad"]})
        assert answer["method"] == "rank" and set(answer["scores"][0]) == set(LABELS)
        added = call(url + "/v1/prompts/again", "PUT", {"path": str(bank / "later")})
        assert added["labels"] == LABELS and added["prompt_mode"] == "prefix_after_bos"
        expected = _scores(workdir, np.load(bos_best / "prompt.npy"), "prefix_after_bos")[3]
        answer = call(url + "/v1/predict", "POST", {"task": "again", "inputs": ["review: bad"]})
        np.testing.assert_allclose(
            [answer["scores"][0][label] for label in LABELS], expected, atol=1e-4
        )
    finally:
        process.kill()


@pytest.mark.parametrize(
    "labels, message",
    [
        (["positive", "positive"], "labels repeat ['positive']; each label once."),
        ([f"label{i}" for i in range(100_000)], "100000 labels; a prompt directory holds at most"),
    ],
)
def test_crafted_labels_in_a_prompt_directory_are_one_line(runs, tmp_path, capsys, labels, message):
    """A shared prompt directory is data: repeated labels (every prediction would be the
    first) and 100,000 labels (a 1.88 TB allocation) are refused before any model work."""
    _, (_, plain_best), _ = runs
    crafted = tmp_path / "crafted"
    shutil.copytree(plain_best, crafted)
    info = json.loads((crafted / INFO_FILE).read_text())
    (crafted / INFO_FILE).write_text(json.dumps({**info, "labels": labels}))
    (tmp_path / "in.jsonl").write_text(json.dumps({"sentence": "fine"}) + "\n")
    code = main(
        ["predict", "--prompt", str(crafted), "--input", str(tmp_path / "in.jsonl"),
         "--output", str(tmp_path / "out.jsonl")]
    )  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and message in error, error


def test_a_relative_model_path_is_read_beside_the_prompt_directory(
    runs, tmp_path, capsys, monkeypatch
):
    """A bundle (prompt directory + its model) shared with a relative model path works from
    any working directory: the path is resolved against the prompt directory."""
    workdir, (_, plain_best), _ = runs
    bundle = tmp_path / "bundle"
    shutil.copytree(plain_best, bundle / "prompt")
    shutil.copytree(workdir / "model", bundle / "model")
    info = json.loads((bundle / "prompt" / INFO_FILE).read_text())
    info["model"]["path"] = "../model"
    (bundle / "prompt" / INFO_FILE).write_text(json.dumps(info))
    assert read_prompt(bundle / "prompt").info.model["path"] == str(bundle / "model")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    command = ["eval", "--prompt", str(bundle / "prompt"), "--output", "e.json"]
    assert main(command) == 0, capsys.readouterr().err
