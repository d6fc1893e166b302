"""A tiny Hugging Face T5 and a user-files task for tests that run the `jaxprompt` command."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax

import jaxprompt
from jaxprompt.config import T5Config
from jaxprompt.models.t5 import init_params

REPO = pathlib.Path(__file__).resolve().parents[1]
# Every sharded dimension divides 2, so a (1, 2) model-parallel mesh shards it for real.
TINY = T5Config(vocab_size=32128, d_model=16, num_heads=2, d_kv=8, d_ff=32, num_layers=2,
                num_decoder_layers=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def make_workdir(path: pathlib.Path) -> pathlib.Path:
    """path/model (the tiny T5), path/train.csv and path/dev.csv (a 2-label task)."""
    jaxprompt.save_hf_checkpoint(path / "model", TINY, init_params(TINY, jax.random.key(0)))
    rows = [("a truly great film", 1), ("dull and awful", 0), ("great fun", 1), ("bad", 0)] * 4
    for name, subset in (("train.csv", rows), ("dev.csv", rows[:6])):
        (path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    return path


def gin_flags(workdir, *extra) -> list[str]:
    """`jaxprompt train`/`plan` flags for the tiny model and task (P=5, batch 4, 16/4)."""
    return ["--gin_file=runs/prompt_tuning.gin", "--gin_file=runs/user_files.gin",
            f"--gin.train.model='{workdir / 'model'}'",
            f"--gin.from_files.train='{workdir / 'train.csv'}'",
            f"--gin.from_files.validation='{workdir / 'dev.csv'}'",
            "--gin.train.prompt_length=5", "--gin.train.batch_size=4",
            "--gin.train.inputs_length=16", "--gin.train.targets_length=4",
            "--gin.TrainerConfig.progress=False", *extra]


def jaxprompt_command(args, env=None, cwd=None, popen=False):
    """`python -m jaxprompt ARGS` on CPU: the CompletedProcess (or the Popen)."""
    environment = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    command = [sys.executable, "-m", "jaxprompt", *args]
    if popen:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=environment, cwd=cwd or REPO)
    return subprocess.run(command, capture_output=True, text=True, env=environment,
                          cwd=cwd or REPO, timeout=600)
