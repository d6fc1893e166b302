"""What many tests share: the tiny-model factory, the multi-process launcher, a pickle that
would run code if loaded. (Fixtures live in conftest.py; CLI and trainer helpers in
cli_helpers.py and train_helpers.py.)"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

from jaxprompt.config import T5Config

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(**fields) -> T5Config:
    """A tiny random-init T5 (T5.1.1 style: gated-GELU, untied), the real vocabulary size
    unless `vocab_size` says otherwise; any T5Config field may be overridden. Every sharded
    dimension divides 2."""
    defaults = dict(
        vocab_size=32128,
        d_model=16,
        num_heads=2,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_decoder_layers=2,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )
    return T5Config(**{**defaults, **fields})


TINY = tiny_config()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(
    module: str, num_processes: int, *args: str, devices_per_process: int = 4, timeout: float = 600
) -> None:
    """Runs `python -m MODULE PROCESS_ID NUM_PROCESSES PORT ARGS...` as a multi-process JAX
    job on this machine (CPU, `devices_per_process` simulated devices each) and asserts
    that every process exits 0."""
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
    )
    port = str(free_port())
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", module, str(i), str(num_processes), port, *args],
            cwd=REPO,
            env=env,
        )
        for i in range(num_processes)
    ]
    for i, worker in enumerate(workers):
        assert worker.wait(timeout=timeout) == 0, f"{module} process {i} failed"


class PickleExploit:
    """Unpickling this runs code (it creates the file `marker`): a file carrying it must be
    refused, and `marker` must never exist."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


__all__ = ["PickleExploit", "REPO", "TINY", "free_port", "run_processes", "tiny_config"]
