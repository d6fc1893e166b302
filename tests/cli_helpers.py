"""A tiny Hugging Face T5 and a user-files task for tests that run the `jaxprompt` command."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax

import jaxprompt
from jaxprompt.models.t5 import init_params

REPO = pathlib.Path(__file__).resolve().parents[1]
# Every sharded dimension divides 2, so a (1, 2) model-parallel mesh shards it for real.
from tests.helpers import TINY  # noqa: E402


def make_workdir(path: pathlib.Path) -> pathlib.Path:
    """path/model (the tiny T5), path/train.csv and path/dev.csv (a 2-label task)."""
    jaxprompt.save_hf_checkpoint(path / "model", TINY, init_params(TINY, jax.random.key(0)))
    rows = [("a truly great film", 1), ("dull and awful", 0), ("great fun", 1), ("bad", 0)] * 4
    for name, subset in (("train.csv", rows), ("dev.csv", rows[:6])):
        (path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    return path


def gin_flags(workdir, *extra) -> list[str]:
    """`jaxprompt train`/`plan` flags for the tiny model and task (P=5, batch 4, 16/4)."""
    return [
        "--gin_file=runs/prompt_tuning.gin",
        "--gin_file=runs/user_files.gin",
        f"--gin.train.model='{workdir / 'model'}'",
        f"--gin.from_files.train='{workdir / 'train.csv'}'",
        f"--gin.from_files.validation='{workdir / 'dev.csv'}'",
        "--gin.train.prompt_length=5",
        "--gin.train.batch_size=4",
        "--gin.train.inputs_length=16",
        "--gin.train.targets_length=4",
        "--gin.TrainerConfig.progress=False",
        *extra,
    ]


def jaxprompt_command(args, env=None, cwd=None, popen=False):
    """`python -m jaxprompt ARGS` on CPU: the CompletedProcess (or the Popen)."""
    environment = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    command = [sys.executable, "-m", "jaxprompt", *args]
    if popen:
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=cwd or REPO,
        )
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=cwd or REPO, timeout=600
    )


def assert_peft_logits_match(model_dir, prompt_dir, encoder_ids, decoder_ids) -> None:
    """Real PEFT loads `prompt_dir` on the transformers T5 at `model_dir` and gives the
    logits of jaxprompt's T5 with the directory's prompt.npy (atol 1e-4)."""
    import numpy as np
    import peft
    import torch
    import transformers

    from jaxprompt.models.t5 import T5

    base = transformers.T5ForConditionalGeneration.from_pretrained(str(model_dir))
    model = peft.PeftModel.from_pretrained(base, str(prompt_dir)).eval()
    config, params = jaxprompt.load_pretrained(str(model_dir))
    ours = T5(config).apply(
        {"params": params},
        encoder_ids,
        decoder_ids,
        prompt=np.load(pathlib.Path(prompt_dir) / "prompt.npy"),
    )
    with torch.no_grad():
        theirs = model(
            input_ids=torch.tensor(encoder_ids),
            attention_mask=torch.tensor(encoder_ids > 0).long(),
            decoder_input_ids=torch.tensor(decoder_ids),
        ).logits
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-4)
