"""Models by Hub id, offline: a real Hugging Face cache (huggingface_hub's layout: blobs,
refs, snapshots) built by the test, read with HF_HUB_OFFLINE=1; the model's own vocabulary."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import jax
import pytest

import jaxprompt
from jaxprompt.checkpoints import model_vocabulary
from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY
from jaxprompt.models.t5 import init_params
from tests.cli_helpers import REPO, TINY

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache(root, repo: str, files: dict[str, str]) -> str:
    """A Hub cache entry for `repo` at COMMIT (refs/main), files as content-addressed blobs
    with relative symlinks from the snapshot, as huggingface_hub writes them."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / COMMIT
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    snapshot.mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        data = open(source, "rb").read()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return str(snapshot)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    model = root / "local_model"
    jaxprompt.save_hf_checkpoint(model, TINY, init_params(TINY, jax.random.key(7)))
    cache = root / "cache"
    snapshot = _cache(
        cache,
        "acme/t5-tiny",
        {
            "config.json": model / "config.json",
            "model.safetensors": model / "model.safetensors",
            "spiece.model": DEFAULT_VOCABULARY,
        },
    )
    return root, model, cache, snapshot


def _python(code: str, cache, cwd=None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=300,
    )


def test_a_hub_id_loads_from_the_cache_offline(hub):
    root, model, cache, snapshot = hub
    code = f"""
import json, jax, numpy as np
from huggingface_hub import scan_cache_dir
from jaxprompt.checkpoints import load_pretrained, model_vocabulary
from jaxprompt.checkpoints.fingerprints import content_fingerprint
from jaxprompt.experiments.runs import recorded_model_path
repos = {{r.repo_id for r in scan_cache_dir().repos}}
_, by_id = load_pretrained("acme/t5-tiny")
_, pinned = load_pretrained("acme/t5-tiny@{COMMIT}")
_, local = load_pretrained({str(model)!r})
print(json.dumps({{"repos": sorted(repos), "id": content_fingerprint(by_id),
                  "pinned": content_fingerprint(pinned), "local": content_fingerprint(local),
                  "vocabulary": model_vocabulary("acme/t5-tiny"),
                  "recorded": recorded_model_path("acme/t5-tiny")}}))
"""
    done = _python(code, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["repos"] == ["acme/t5-tiny"]  # huggingface_hub reads the cache the test built
    assert out["id"] == out["pinned"] == out["local"]
    assert out["vocabulary"] == os.path.join(snapshot, "spiece.model")
    assert out["recorded"] == f"acme/t5-tiny@{COMMIT}"


def test_a_missing_id_is_one_line_naming_how_to_fetch_it(hub, tmp_path):
    _, _, cache, _ = hub
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-m", "jaxprompt", "inspect", "acme/not-cached"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert "acme/not-cached" in error and "huggingface-cli download acme/not-cached" in error


def test_a_local_directory_of_the_same_name_wins(hub, tmp_path):
    _, model, _, _ = hub
    shutil.copytree(model, tmp_path / "acme" / "t5-tiny")
    code = """
from jaxprompt.checkpoints.hub import is_hub_id
from jaxprompt.checkpoints import load_pretrained
print(is_hub_id("acme/t5-tiny"), load_pretrained("acme/t5-tiny")[0].d_model)
"""
    done = _python(code, tmp_path / "empty_cache", cwd=tmp_path)  # nothing cached: local only
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "16"]


def test_the_checkpoint_s_own_vocabulary_is_the_default(tmp_path):
    import sentencepiece

    model = tmp_path / "model"
    model.mkdir()
    assert model_vocabulary(str(model)) == DEFAULT_VOCABULARY  # none of its own
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(["a small corpus of words"] * 50),
        model_prefix=str(model / "spiece"),
        vocab_size=20,
        model_type="char",
        minloglevel=2,
    )
    assert model_vocabulary(str(model)) == str(model / "spiece.model")
    assert model_vocabulary(str(model), "/other/spiece.model") == "/other/spiece.model"
    assert model_vocabulary("tiny").endswith(os.path.join("t5_tiny_lm", "spiece.model"))


def test_dot_segments_are_not_hub_ids_and_are_refused_in_one_line(hub, tmp_path):
    """`org/..` and a revision of `..` segments would leave the cache's refs/ folder; they
    are not Hub ids, and loading them is one line (no huggingface_hub traceback)."""
    from jaxprompt.checkpoints.hub import is_hub_id

    _, _, cache, _ = hub
    bad = ["acme/..", "acme/t5-tiny@../../models--acme--t5-tiny/refs/main", "acme/./x"]
    assert is_hub_id("acme/t5-tiny@v1.0") and not any(is_hub_id(name) for name in bad)
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
    for name in bad[:2]:
        done = subprocess.run(
            [sys.executable, "-m", "jaxprompt", "inspect", name],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        error = done.stderr.strip()
        assert done.returncode == 2 and len(error.splitlines()) == 1, error
        assert name in error
