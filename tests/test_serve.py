"""`jaxprompt serve`: a real server on a loopback port, a real HTTP client, the embedded model.

References are independent of the server: single-task `score_candidates` with the
unpadded prompt, and `jaxprompt predict --prompt_bank` through the CLI.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("aiohttp")

from jaxprompt import data  # noqa: E402
from jaxprompt.checkpoints import load_pretrained  # noqa: E402
from jaxprompt.cli.main import main as cli_main  # noqa: E402
from jaxprompt.evaluation import encode_batch, score_candidates  # noqa: E402
from jaxprompt.serving.running import ServerThread  # noqa: E402
from jaxprompt.serving.server import PromptServer, ServeConfig  # noqa: E402

LABELS = {"sst2": ["negative", "positive"], "rte": ["entailment", "not_entailment"]}
TEXTS = [
    "a gripping , beautifully acted film",
    "dull and far too long",
    "it was fine",
    "the plot never comes together",
    "a joy from start to finish",
]


def call(
    url: str,
    method: str = "GET",
    body=None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 60,
    headers=None,
):
    """(status, parsed JSON or text, headers) from a real HTTP request."""
    data_ = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data_, method=method, headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text, headers = response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


@pytest.fixture(scope="module")
def model():
    config, params = load_pretrained("tiny")
    return config, params, data.vocabulary(data.DEFAULT_VOCABULARY)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory, model):
    config = model[0]
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("bank")
    for name, length in (("sst2", 6), ("rte", 4), ("echo", 3)):
        prompt = (rng.normal(size=(length, config.d_model)) * 0.5).astype(np.float32)
        np.save(directory / f"{name}.npy", prompt)
    (directory / "bank.json").write_text(json.dumps({k: {"labels": v} for k, v in LABELS.items()}))
    return directory


def make_server(model, bank_dir, **overrides) -> PromptServer:
    config, params, vocab = model
    # {"path": ...} PUTs may read the bank and the tests' own temporary folders beside it.
    settings = dict(
        max_batch=8,
        batch_buckets=(2, 8),
        length_buckets=(32, 64),
        inputs_length=64,
        max_wait_ms=300.0,
        max_prompt_length=10,
        prompt_dirs=(str(bank_dir), str(bank_dir.parent)),
    )
    settings.update(overrides)
    server = PromptServer(config, params, vocab, ServeConfig(**settings))
    server.load_bank_directory(str(bank_dir))
    server.start()
    return server


@pytest.fixture(scope="module")
def server(model, bank_dir):
    handle = ServerThread(make_server(model, bank_dir))
    yield handle
    handle.stop()


def metric(url: str, name: str) -> float:
    _, text, _ = call(url + "/metrics")
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_predictions_match_single_task_scoring_and_cli_predict(server, model, bank_dir, tmp_path):
    config, params, vocab = model
    status, tasks, _ = call(server.url + "/v1/tasks")
    assert status == 200
    assert {t["task"]: t["method"] for t in tasks["tasks"]} == {
        "echo": "greedy",
        "rte": "rank",
        "sst2": "rank",
    }
    answers = {}
    for task in ("sst2", "rte", "echo"):
        status, answer, _ = call(
            server.url + "/v1/predict", "POST", {"task": task, "inputs": TEXTS}
        )
        assert status == 200, answer
        answers[task] = answer["predictions"]
        if task in LABELS:  # independent reference: one task, its unpadded prompt
            prompt = np.load(bank_dir / f"{task}.npy")
            ids = encode_batch(vocab, TEXTS, 64)
            expected = np.asarray(
                score_candidates(config, params, prompt, ids, encode_batch(vocab, LABELS[task], 16))
            )
            got = np.asarray([[s[label] for label in LABELS[task]] for s in answer["scores"]])
            np.testing.assert_allclose(got, expected, atol=2e-4)
            assert answer["predictions"] == [LABELS[task][i] for i in expected.argmax(1)]
    rows = [{"task": task, "inputs": text} for task in ("sst2", "rte", "echo") for text in TEXTS]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        cli_main(
            [
                "predict",
                "--model",
                "tiny",
                "--prompt_bank",
                str(bank_dir),
                "--input",
                str(tmp_path / "in.jsonl"),
                "--output",
                str(tmp_path / "out.jsonl"),
                "--inputs_length",
                "64",
                "--batch_size",
                "4",
            ]
        )
        == 0
    )
    cli = [json.loads(line)["prediction"] for line in open(tmp_path / "out.jsonl")]
    assert cli == answers["sst2"] + answers["rte"] + answers["echo"]


def test_concurrent_tasks_share_batches_and_get_their_own_answers(server):
    alone = {
        task: call(server.url + "/v1/predict", "POST", {"task": task, "inputs": TEXTS[:2]})[1]
        for task in ("sst2", "rte", "echo")
    }
    mixed_before = metric(server.url, "jaxprompt_mixed_batches_total")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {
            task: pool.submit(
                call, server.url + "/v1/predict", "POST", {"task": task, "inputs": TEXTS[:2]}
            )
            for task in ("sst2", "rte", "echo")
        }
        together = {task: f.result()[1] for task, f in futures.items()}
    for task in together:
        assert together[task]["predictions"] == alone[task]["predictions"], task
        for a, b in zip(together[task].get("scores", []), alone[task].get("scores", [])):
            assert a == pytest.approx(b, abs=2e-4)
    assert metric(server.url, "jaxprompt_mixed_batches_total") > mixed_before
    assert metric(server.url, 'jaxprompt_examples_total{task="rte"}') >= 4


def test_prompt_hot_added_replaced_and_deleted(server, model, bank_dir, tmp_path):
    d_model = model[0].d_model
    # Added from a path on the server (PEFT-free .npy here), then used.
    np.save(tmp_path / "new.npy", np.load(bank_dir / "sst2.npy"))
    status, info, _ = call(
        server.url + "/v1/prompts/movies",
        "PUT",
        {"path": str(tmp_path / "new.npy"), "labels": LABELS["sst2"]},
    )
    assert status == 201 and info["prompt_length"] == 6 and not info["replaced"]
    same = [
        call(server.url + "/v1/predict", "POST", {"task": t, "inputs": TEXTS})[1]
        for t in ("movies", "sst2")
    ]
    assert same[0]["predictions"] == same[1]["predictions"]
    # Replaced by an uploaded safetensors file: the answers follow the new prompt.
    from safetensors.numpy import save

    other = np.load(bank_dir / "rte.npy")
    status, info, _ = call(
        server.url + "/v1/prompts/movies?format=safetensors&labels=negative&labels=positive",
        "PUT",
        raw=save({"prompt": other}),
        content_type="application/octet-stream",
    )
    assert status == 200 and info["replaced"] and info["prompt_length"] == 4
    status, answer, _ = call(
        server.url + "/v1/predict", "POST", {"task": "movies", "inputs": TEXTS[:1]}
    )
    assert status == 200 and answer["scores"][0] != same[0]["scores"][0]
    # Refused: the old prompt keeps serving.
    np.save(tmp_path / "wide.npy", np.zeros((3, d_model + 1), np.float32))
    status, error, _ = call(
        server.url + "/v1/prompts/movies",
        "PUT",
        {"path": str(tmp_path / "wide.npy"), "labels": ["a", "b"]},
    )
    assert status == 400 and "d_model" in error["error"]
    assert (
        call(server.url + "/v1/predict", "POST", {"task": "movies", "inputs": TEXTS[:1]})[1]
        == answer
    )
    assert call(server.url + "/v1/prompts/movies", "DELETE")[0] == 200
    assert (
        call(server.url + "/v1/predict", "POST", {"task": "movies", "inputs": TEXTS[:1]})[0] == 404
    )


@pytest.mark.parametrize(
    "body, status, field",
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (json.dumps({"task": 3, "inputs": ["a"]}).encode(), 400, "'task'"),
        (json.dumps({"task": "nope", "inputs": ["a"]}).encode(), 404, "'task'"),
        (json.dumps({"task": "sst2", "inputs": "a film"}).encode(), 400, "'inputs'"),
        (json.dumps({"task": "sst2", "inputs": []}).encode(), 400, "'inputs'"),
        (json.dumps({"task": "sst2", "inputs": ["ok", 7]}).encode(), 400, "'inputs[1]'"),
        (json.dumps({"task": "sst2", "inputs": ["word " * 80]}).encode(), 400, "refused"),
        (json.dumps({"task": "sst2", "inputs": ["a"] * 300}).encode(), 400, "at most"),
    ],
)
def test_bad_predict_requests_get_a_4xx_naming_the_field(server, body, status, field):
    got, answer, _ = call(server.url + "/v1/predict", "POST", raw=body)
    assert got == status and field in answer["error"] and "\n" not in answer["error"]
    assert call(server.url + "/healthz")[0] == 200  # still up


def test_bad_prompt_uploads_are_refused(server, model, tmp_path):
    d_model = model[0].d_model
    bad = np.zeros((3, d_model), np.float32)
    bad[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "long.npy", np.zeros((11, d_model), np.float32))
    np.save(tmp_path / "good.npy", np.zeros((2, d_model), np.float32))
    cases = [
        ({"path": str(tmp_path / "nan.npy")}, "non-finite"),
        ({"path": str(tmp_path / "long.npy")}, "max_prompt_length"),
        ({"path": str(tmp_path / "good.npy"), "labels": "positive"}, "labels"),
        ({"path": str(tmp_path / "good.npy"), "labels": ["a"] * 2}, "repeats"),
    ]
    for body, reason in cases:
        status, answer, _ = call(server.url + "/v1/prompts/x", "PUT", body)
        assert status == 400 and reason in answer["error"], (body, answer)
    status, answer, _ = call(
        server.url + "/v1/prompts/x", "PUT", {"path": str(tmp_path / "missing.npy")}
    )
    assert status == 403 and "'path'" in answer["error"]
    status, answer, _ = call(
        server.url + "/v1/prompts/x?format=npy",
        "PUT",
        raw=b"garbage",
        content_type="application/octet-stream",
    )
    assert status == 400 and "body: not a prompt file jaxprompt can read" in answer["error"]
    status, answer, _ = call(
        server.url + "/v1/prompts/x?format=exe",
        "PUT",
        raw=b"1",
        content_type="application/octet-stream",
    )
    assert status == 400 and "'format'" in answer["error"]
    assert (
        call(server.url + "/v1/prompts/bad%20name", "PUT", {"path": str(tmp_path / "long.npy")})[0]
        == 400
    )
    assert call(server.url + "/v1/nothing")[0] == 404
    names = [t["task"] for t in call(server.url + "/v1/tasks")[1]["tasks"]]
    assert "x" not in names


def test_full_queue_answers_503_and_slow_requests_504(model, bank_dir):
    # Batches wait up to 2 s to fill; the queue holds 6 examples; requests time out at 1 s.
    handle = ServerThread(
        make_server(model, bank_dir, max_wait_ms=2000.0, max_queue=6, request_timeout_s=1.0)
    )
    try:
        body = {"task": "sst2", "inputs": TEXTS[:4]}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, handle.url + "/v1/predict", "POST", body)
            time.sleep(0.3)
            status, answer, headers = call(handle.url + "/v1/predict", "POST", body)
            assert status == 503 and headers["Retry-After"] == "1" and "queue" in answer["error"]
            status, answer, _ = first.result()
            assert status == 504 and "request_timeout_s" in answer["error"]
        assert (
            metric(handle.url, 'jaxprompt_requests_total{code="503",endpoint="/v1/predict"}') == 1
        )
    finally:
        handle.stop()


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests(bank_dir, tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jaxprompt.cli.main",
            "serve",
            "--model",
            "tiny",
            "--prompt_bank",
            str(bank_dir),
            "--port",
            "0",
            "--max_wait_ms",
            "1500",
            "--batch_buckets",
            "8",
            "--length_buckets",
            "32",
            "--inputs_length",
            "32",
            "--max_batch",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        url = None
        for line in process.stdout:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the server did not start"
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(
                answer=call(url + "/v1/predict", "POST", {"task": "sst2", "inputs": TEXTS[:2]})
            )
        )
        worker.start()
        time.sleep(0.5)  # the request now waits in the queue for its batch to fill
        process.send_signal(signal.SIGTERM)
        worker.join(30)
        assert result["answer"][0] == 200 and len(result["answer"][1]["predictions"]) == 2
        assert process.wait(30) == 0
        assert "drained and stopped" in process.stdout.read()
    finally:
        process.kill()


SHARDED = r"""
import json, sys, numpy as np
from jaxprompt import data
from jaxprompt.checkpoints import load_pretrained
from jaxprompt.partitioning import make_mesh
from jaxprompt.serving.runner import Example
from jaxprompt.serving.server import PromptServer, ServeConfig
config, params = load_pretrained("tiny")
vocab = data.vocabulary(data.DEFAULT_VOCABULARY)
out = {}
for name, mesh in (("single", None), ("sharded", make_mesh((2, 2)))):
    server = PromptServer(config, params, vocab, ServeConfig(
        max_batch=4, batch_buckets=(4,), length_buckets=(32,), inputs_length=32,
        max_prompt_length=10), mesh=mesh)
    server.load_bank_directory(sys.argv[1])
    texts = json.loads(sys.argv[2])
    examples = [Example(t, np.asarray(vocab.encode(x) + [1], np.int32))
                for t, x in zip(["sst2", "rte", "echo", "sst2"], texts)]
    out[name] = [(r.prediction, r.scores) for r in server.runner.run(
        server.registry.snapshot(), examples)]
    if mesh is not None:
        leaf = server.runner.params["token_embedder"]["embedding"]
        out["embedding_shards"] = len({str(s.index) for s in leaf.addressable_shards})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_sharded_frozen_model_serves_the_same_answers(bank_dir):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    done = subprocess.run(
        [sys.executable, "-c", SHARDED, str(bank_dir), json.dumps(TEXTS[:4])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["embedding_shards"] == 2  # vocab over the model axis (2), replicated over data
    for (label, scores), (label_ref, scores_ref) in zip(out["sharded"], out["single"]):
        assert label == label_ref
        if scores_ref:
            assert scores == pytest.approx(scores_ref, abs=2e-4)


# -- the admin surface: safe to expose -------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(model, bank_dir):
    handle = ServerThread(make_server(model, bank_dir, admin_token="s3cret", idle_timeout_s=1.0))
    yield handle
    handle.stop()


def test_put_and_delete_need_the_admin_token(guarded, bank_dir):
    body = {"path": str(bank_dir / "sst2.npy"), "labels": LABELS["sst2"]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        status, answer, _ = call(guarded.url + "/v1/prompts/t", "PUT", body, headers=headers)
        assert status == 401 and "admin token" in answer["error"]
        assert call(guarded.url + "/v1/prompts/sst2", "DELETE", headers=headers)[0] == 401
    good = {"Authorization": "Bearer s3cret"}
    assert call(guarded.url + "/v1/prompts/t", "PUT", body, headers=good)[0] == 201
    assert call(guarded.url + "/v1/prompts/t", "DELETE", headers=good)[0] == 200
    assert call(guarded.url + "/v1/tasks")[0] == 200  # reading needs no token


def test_paths_outside_the_prompt_dirs_are_one_403(guarded, tmp_path_factory):
    outside = tmp_path_factory.getbasetemp().parent  # not under the allowed folders
    good = {"Authorization": "Bearer s3cret"}
    answers = set()
    for path in (
        "/etc/passwd",
        "/etc",
        "/no/such/file.npy",
        str(outside),
        "../../../../etc/passwd",
    ):
        status, answer, _ = call(guarded.url + "/v1/prompts/t", "PUT", {"path": path}, headers=good)
        answers.add((status, answer["error"]))
    assert answers == {
        (
            403,
            "field 'path': not a prompt inside the bank directory or a --prompt_dir of this server",
        )
    }


def test_corrupt_and_crafted_uploads_are_a_400_quoting_nothing(guarded, caplog):
    from safetensors.numpy import save

    good = {"Authorization": "Bearer s3cret"}
    corrupt = save({"prompt": np.zeros((2, 4), np.float32)})[:-8]  # truncated data
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), 'SECRET_KEY_123': 1, }"
    header = header + " " * (63 - len(header) % 64) + "\n"
    crafted = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(32)
    for fmt, raw in (("safetensors", corrupt), ("npy", crafted)):
        status, answer, _ = call(
            guarded.url + f"/v1/prompts/t?format={fmt}",
            "PUT",
            raw=raw,
            content_type="application/octet-stream",
            headers=good,
        )
        assert status == 400 and "SECRET" not in answer["error"] and "\n" not in answer["error"]
    assert "Traceback" not in caplog.text


def test_a_huge_input_is_refused_before_tokenizing(guarded):
    start = time.perf_counter()
    status, answer, _ = call(
        guarded.url + "/v1/predict", "POST", {"task": "sst2", "inputs": ["word " * 2_000_000]}
    )
    assert status == 400 and "characters, over the 64-token limit" in answer["error"]
    assert time.perf_counter() - start < 5  # 10 MB; tokenizing it would take seconds


def test_idle_and_slow_header_connections_are_closed(guarded):
    host, port = guarded.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        start = time.perf_counter()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.perf_counter() - start < 8
    assert call(guarded.url + "/healthz")[0] == 200


def test_serve_beyond_loopback_needs_a_token(capsys):
    from jaxprompt.serving.admin import check_exposure

    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", "t", False)
    check_exposure("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="--admin_token TOKEN or \\$JAXPROMPT_ADMIN_TOKEN"):
        check_exposure("0.0.0.0", None, False)
    assert (
        cli_main(["serve", "--model", "tiny", "--prompt_bank", "/nowhere", "--host", "0.0.0.0"])
        == 2
    )
    assert "listens beyond loopback" in capsys.readouterr().err


def test_a_port_in_use_is_refused_before_loading(capsys):
    """A second server on a busy port: one line, before the model is read (the bank path
    does not even exist: the port is checked first)."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli_main(
            ["serve", "--model", "tiny", "--prompt_bank", "/nowhere", "--port", str(port)]
        )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--port {port}: 127.0.0.1:{port} is in use" in err
