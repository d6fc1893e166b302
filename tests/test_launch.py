"""tools/launch_tpu.sh --dry-run: single-host types run one VM without jax.distributed; the
plan runs first and a step that does not fit creates no VM."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "tools" / "launch_tpu.sh"


def dry_run(tpu_type: str, *extra: str, check: bool = True, model: str = "gs://m"):
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    done = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--name",
            "pt",
            "--zone",
            "z",
            "--type",
            tpu_type,
            "--output",
            "gs://bucket/run",
            "--model",
            model,
            "--task",
            "rte",
            "--dry-run",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=check,
        env=dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"),
        timeout=600,
    )
    return done.stdout if check else done


@pytest.mark.parametrize("tpu_type", ["v4-8", "v5litepod-8", "v3-8"])
def test_single_host_types_run_one_worker_without_distributed(tpu_type):
    out = dry_run(tpu_type, "--skip_plan")
    assert "single host" in out
    assert "--multihost=off" in out and "--worker=all" not in out and "--worker=0" in out


@pytest.mark.parametrize("tpu_type", ["v3-32", "v5litepod-16", "v4-32"])
def test_pod_slices_run_every_worker_with_distributed(tpu_type):
    out = dry_run(tpu_type, "--skip_plan")
    assert "multi-host" in out
    assert "--multihost=auto" in out and "--worker=0" not in out and "--worker=all" in out


@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="the plan compiles with libtpu (pip install 'jaxprompt[tpu]')",
)
@pytest.mark.slow
def test_a_step_that_does_not_fit_creates_no_vm(tmp_path):
    import jax

    import jaxprompt
    from jaxprompt.models.t5 import init_params
    from tests.helpers import tiny_config

    tiny = tiny_config(
        num_layers=1, num_decoder_layers=None, feed_forward_proj="relu", tie_word_embeddings=True
    )
    jaxprompt.save_hf_checkpoint(tmp_path / "m", tiny, init_params(tiny, jax.random.key(0)))
    done = dry_run(
        "v5e-1",
        "--",
        "--gin.train.batch_size=65536",
        "--gin.train.targets_length=4",
        check=False,
        model=str(tmp_path / "m"),
    )
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "verdict: does NOT fit" in done.stdout and "not launching" in done.stderr
    assert "gcloud compute tpus tpu-vm create" not in done.stdout
