"""Shared test fixtures: the ../shared folder (tests/helpers.py holds the tiny-model factory,
the multi-process launcher and the pickle exploit; tests/torch_reference.py the torch T5)."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

# The tests run on CPU; with libtpu installed (the `tpu` extra, for deviceless TPU plans)
# JAX would otherwise probe for a TPU first.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One XLA compilation cache for every process of the session (the CLI and multi-process
# tests start many that compile the same tiny steps: ~20 % off them, measured); a cache the
# environment names wins. Keyed by JAX and XLA versions, so reruns reuse it safely.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxprompt-tests-xla-cache")
)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("JAXPROMPT_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> pathlib.Path:
    """A path under ../shared, skipping the test with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} not found: this test needs the ../shared fixtures folder beside "
            "the repository (set JAXPROMPT_SHARED to point elsewhere)."
        )
    return path
