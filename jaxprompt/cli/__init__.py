"""The `jaxprompt` command line: `main.py` builds the parser, one module per command."""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import os


def run() -> int:
    """The `jaxprompt` command's entry point: sets up the process (no TPU probe where there is
    no TPU; huge pages for XLA:CPU's step memory, see jaxprompt.host_memory; a re-exec) before
    anything imports JAX, then runs `main`. `main([...])` called from Python leaves the process
    as it is."""
    from jaxprompt.host_memory import reexec_with_malloc_tunables

    skip_absent_tpu()
    reexec_with_malloc_tunables()
    from jaxprompt.cli.main import main

    return main()


def skip_absent_tpu() -> None:
    """With libtpu installed (the `tpu` extra, for deviceless TPU plans) JAX probes for a TPU
    at start, and on a machine without one libtpu prints a block of "INVALID_ARGUMENT:
    unexpected worker hostname" errors that reads like a failure. Where JAX_PLATFORMS is
    unset, no TPU device file exists (/dev/accel*, /dev/vfio/N) and no GPU plugin of JAX is
    installed, JAX is told to use the CPU. Deviceless plans do not need the probe."""
    if "JAX_PLATFORMS" in os.environ or importlib.util.find_spec("libtpu") is None:
        return
    if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):
        return
    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    if any(n.startswith(("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm")) for n in names):
        return
    os.environ["JAX_PLATFORMS"] = "cpu"
