"""glibc's malloc told to back large blocks with transparent huge pages, by re-running the
command with GLIBC_TUNABLES set (glibc reads its tunables only when a process starts).

XLA:CPU mallocs each step's temporaries (1.08 GB for the quickstart's prompt-tuning step)
and frees them when the step ends. glibc maps so large a block afresh (mmap) and unmaps it on
free, so every step faults all of its 4 KiB pages in again: ~270k page faults and ~0.7 s of
kernel time per step on the 2-core test machine. With glibc.malloc.hugetlb=1 the block is
faulted in 2 MiB at a time (~1k faults per step) and memory is still returned to the system
(`python tools/bench_host_memory.py` measures both side by side).

Applied when it can work: Linux, glibc >= 2.35 (the tunable's first release), transparent
huge pages set to "always" or "madvise". Opt out with JAXPROMPT_MALLOC=default; a
GLIBC_TUNABLES already set is left as it is.
"""

from __future__ import annotations

import os
import platform
import sys

TUNABLES = "glibc.malloc.hugetlb=1"
OPT_OUT = "JAXPROMPT_MALLOC"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_has_hugetlb_tunable() -> bool:
    name, version = platform.libc_ver()
    try:
        return name == "glibc" and tuple(int(x) for x in version.split(".")[:2]) >= (2, 35)
    except ValueError:
        return False


def _transparent_huge_pages_on() -> bool:
    try:
        with open(THP_SETTING) as f:
            setting = f.read()
    except OSError:
        return False
    return "[always]" in setting or "[madvise]" in setting


def wants_tunables(environ=os.environ) -> bool:
    """True where the tunable can work and nobody set GLIBC_TUNABLES or opted out."""
    return (
        sys.platform.startswith("linux")
        and "GLIBC_TUNABLES" not in environ
        and environ.get(OPT_OUT) != "default"
        and _glibc_has_hugetlb_tunable()
        and _transparent_huge_pages_on()
    )


def reexec_with_malloc_tunables() -> None:
    """Replaces this process by the same command (interpreter and arguments) with
    GLIBC_TUNABLES=TUNABLES; returns at once when `wants_tunables` is False.

    Call it first thing in a command's entry point, before JAX starts threads or allocates.
    """
    if not wants_tunables():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, dict(os.environ, GLIBC_TUNABLES=TUNABLES))
