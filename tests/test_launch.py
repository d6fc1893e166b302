"""tools/launch_tpu.sh --dry-run: single-host types run one VM without jax.distributed."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "tools" / "launch_tpu.sh"


def dry_run(tpu_type: str) -> str:
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    done = subprocess.run(["bash", str(SCRIPT), "--name", "pt", "--zone", "z", "--type", tpu_type,
                           "--output", "gs://bucket/run", "--model", "gs://m", "--task", "rte",
                           "--dry-run"], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("tpu_type", ["v4-8", "v5litepod-8", "v3-8"])
def test_single_host_types_run_one_worker_without_distributed(tpu_type):
    out = dry_run(tpu_type)
    assert "single host" in out
    assert "--multihost=off" in out and "--worker=all" not in out and "--worker=0" in out


@pytest.mark.parametrize("tpu_type", ["v3-32", "v5litepod-16", "v4-32"])
def test_pod_slices_run_every_worker_with_distributed(tpu_type):
    out = dry_run(tpu_type)
    assert "multi-host" in out
    assert "--multihost=auto" in out and "--worker=0" not in out and "--worker=all" in out
