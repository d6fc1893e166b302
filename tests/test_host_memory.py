"""The malloc tunable: a command re-runs itself with it, and glibc then faults a large block
(XLA:CPU's per-step temporaries are such blocks) in by 2 MiB huge pages, not 4 KiB pages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jaxprompt import host_memory

pytestmark = pytest.mark.skipif(
    not host_memory.wants_tunables({}),
    reason="needs Linux, glibc >= 2.35 and transparent huge pages",
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = """
import ctypes, os, resource
from jaxprompt.host_memory import reexec_with_malloc_tunables
reexec_with_malloc_tunables()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def faults_of_one_large_block(size=128 * 2**20):  # above glibc's largest mmap threshold
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_one_large_block()
print(os.environ.get("GLIBC_TUNABLES"), faults_of_one_large_block())
"""


def _run(**env) -> tuple[str, int]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", host_memory.OPT_OUT)
    }
    environ.update(env, PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=environ, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_the_command_reruns_itself_with_the_tunable_and_faults_by_huge_pages():
    tunables, faults = _run()
    assert tunables == host_memory.TUNABLES
    opted_out, default_faults = _run(JAXPROMPT_MALLOC="default")
    assert opted_out == "None"
    # 128 MiB is 32,768 pages of 4 KiB (mapped afresh for each block) or 64 huge pages.
    assert default_faults > 30_000
    assert faults < 1_000


def test_tunables_the_user_set_are_kept():
    assert _run(GLIBC_TUNABLES="glibc.malloc.arena_max=2")[0] == "glibc.malloc.arena_max=2"
    assert not host_memory.wants_tunables({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert not host_memory.wants_tunables({host_memory.OPT_OUT: "default"})
