"""Nothing lost: an interrupt at any point resumes bit-identically, one run per output
directory, a diverged run writes no non-finite checkpoint."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxprompt.training.interrupts import TrainingInterrupted
from jaxprompt.training.loop import TrainerConfig, TrainingError, train
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.run_lock import DirectoryInUse, run_lock
from tests.cli_helpers import gin_flags, jaxprompt_command, make_workdir
from tests.train_helpers import TINY, synthetic_batch, tiny_frozen

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 12
# Checkpoints at 5 and 10, logs every 4: an interrupt between them exercises the pending loss.
TRAINER = TrainerConfig(steps=STEPS, eval_every=0, checkpoint_every=5, log_every=4, progress=False)


def prompt0():
    return jax.random.uniform(jax.random.key(5), (6, TINY.d_model), minval=-0.5, maxval=0.5)


def interrupting_batches(at_batch: int | None):
    """A data source that raises SIGINT while producing batch `at_batch` (once): the loop is
    then between step at_batch - 1 and the check of its loss."""
    fired = []

    def batches(position):
        index = position
        while True:
            if index == at_batch and not fired:
                fired.append(True)
                signal.raise_signal(signal.SIGINT)
            yield synthetic_batch(index)
            index += 1

    return batches


def run(output_dir, batches, eval_fn=None, trainer=TRAINER, optimizer=OptimizerConfig()):
    return train(
        model_config=TINY,
        frozen_params=tiny_frozen(),
        trainable={"prompt": prompt0()},
        train_batches=batches,
        output_dir=str(output_dir),
        trainer_config=trainer,
        optimizer_config=optimizer,
        eval_fn=eval_fn,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    result = run(tmp_path_factory.mktemp("whole"), interrupting_batches(None))
    return np.asarray(result.state.trainable["prompt"])


@pytest.mark.parametrize("at_batch", [0, 3, 6, 9])
@pytest.mark.slow
def test_interrupt_between_a_step_and_its_loss_check_resumes_exactly(
    tmp_path, uninterrupted, at_batch
):
    # Step at_batch still runs (it was dispatched); the loop stops before the next one. At 10
    # the periodic checkpoint is that same save.
    with pytest.raises(
        TrainingInterrupted,
        match=rf"at step {at_batch + 1}; saved checkpoint "
        rf"{at_batch + 1}",
    ) as stopped:
        run(tmp_path, interrupting_batches(at_batch))
    assert stopped.value.signum == signal.SIGINT
    resumed = run(tmp_path, interrupting_batches(None))
    assert resumed.step == STEPS
    np.testing.assert_array_equal(np.asarray(resumed.state.trainable["prompt"]), uninterrupted)


@pytest.mark.slow
def test_interrupt_during_evaluation_resumes_exactly(tmp_path, uninterrupted):
    calls = []

    def eval_fn(trainable, frozen):
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        return {"score": 1.0}

    trainer = TrainerConfig(
        steps=STEPS, eval_every=4, log_every=4, eval_metric="score", eval_mode="max", progress=False
    )
    whole = run(
        tmp_path / "whole", interrupting_batches(None), lambda t, f: {"score": 1.0}, trainer
    )
    with pytest.raises(TrainingInterrupted, match="at step 4; saved"):
        run(tmp_path / "cut", interrupting_batches(None), eval_fn, trainer)
    resumed = run(tmp_path / "cut", interrupting_batches(None), eval_fn, trainer)
    np.testing.assert_array_equal(
        np.asarray(resumed.state.trainable["prompt"]), np.asarray(whole.state.trainable["prompt"])
    )


@pytest.mark.slow
def test_sigint_to_the_command_is_one_line_and_resumes(tmp_path):
    """A real SIGINT to `jaxprompt train` mid-run: exit 130, one line, no traceback; the
    same command then finishes with the uninterrupted run's prompt."""
    workdir = make_workdir(tmp_path)
    flags = gin_flags(
        workdir,
        "--gin.TrainerConfig.steps=1500",
        "--gin.TrainerConfig.eval_every=0",
        "--gin.TrainerConfig.log_every=7",
        "--gin.TrainerConfig.checkpoint_every=5",
        "--gin.train.eval_split=None",
    )
    whole = jaxprompt_command(["train", *flags, f"--output_dir={tmp_path / 'whole'}"])
    assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp_path / "cut"
    process = jaxprompt_command(["train", *flags, f"--output_dir={out}"], popen=True)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "5").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and re.search(r"Interrupted \(SIGINT\) at step \d+; saved", err)
    resumed = jaxprompt_command(["train", *flags, f"--output_dir={out}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    np.testing.assert_array_equal(
        np.load(out / "checkpoints" / "1500" / "prompt.npy"),
        np.load(tmp_path / "whole" / "checkpoints" / "1500" / "prompt.npy"),
    )


@pytest.mark.slow
def test_a_second_run_on_the_same_directory_stops_at_once(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "tests.train_worker", "train", str(out), str(STEPS), "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    try:
        deadline = time.time() + 300
        while not (out / "model_info.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run(
            [sys.executable, "-m", "tests.train_worker", "train", str(out), str(STEPS), "-1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=dict(os.environ, JAX_PLATFORMS="cpu"),
            timeout=300,
        )
        assert second.returncode != 0
        assert (
            f"is in use by another jaxprompt train (jaxprompt train: pid {first.pid}"
            in second.stderr
        )
    finally:
        first.kill()
        first.wait()
    # kill -9 leaves no stale lock: the directory is usable at once.
    with run_lock(str(out)):
        pass


def test_lock_in_one_process_refuses_a_second_holder(tmp_path):
    # flock is per open file: a second open in the same process is refused too.
    with run_lock(str(tmp_path), "jaxprompt train"):
        with pytest.raises(DirectoryInUse, match=f"pid {os.getpid()}"):
            with run_lock(str(tmp_path)):
                pass


@pytest.mark.slow
def test_a_diverged_run_never_writes_a_non_finite_prompt(tmp_path):
    trainer = TrainerConfig(steps=20, eval_every=0, checkpoint_every=1, log_every=1, progress=False)
    with pytest.raises(TrainingError, match="not finite|Non-finite") as stopped:
        run(
            tmp_path,
            interrupting_batches(None),
            trainer=trainer,
            optimizer=OptimizerConfig(name="adam", learning_rate=1e38),
        )
    saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    for step in saved:
        assert np.isfinite(np.load(tmp_path / "checkpoints" / str(step) / "prompt.npy")).all()
    if saved:
        assert f"step {saved[-1]}" in str(stopped.value)


def test_sigint_during_the_first_compile_saves_step_1_without_a_crash(tmp_path):
    """model_info.json is written just before the first step compiles: a SIGINT then waits
    for the compile and the step (never a crash inside XLA), saves, and says so."""
    workdir = make_workdir(tmp_path)
    flags = gin_flags(workdir, "--gin.TrainerConfig.steps=50", "--gin.train.eval_split=None")
    out = tmp_path / "run"
    process = jaxprompt_command(["train", *flags, f"--output_dir={out}"], popen=True)
    deadline = time.time() + 300
    while not (out / "model_info.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    step = int(re.search(r"Interrupted \(SIGINT\) at step (\d+); saved checkpoint", err)[1])
    assert (out / "checkpoints" / str(step) / "prompt.npy").exists()


SAVED = (
    "checkpoints/2/prompt.npy",
    "checkpoints/2/jaxprompt.json",
    "checkpoints/2/adapter_config.json",
    "checkpoints/2/adapter_model.safetensors",
    "best/2/prompt.npy",
    "best/2/jaxprompt.json",
    "best/2/adapter_config.json",
    "best/2/adapter_model.safetensors",
)
# A 2-step run saves once (step 2: best, then latest), 4 crash points each: before the
# orbax commit, after it, after the prompt files, after the PEFT files (jaxprompt.json is
# written last, atomically). All 8 pass (2026-12-04); the suite runs one of each kind to
# stay fast: the first save's commit, its prompt files, its PEFT files, the second commit.
CRASH_POINTS = (2, 3, 4, 6)


@pytest.fixture(scope="module")
def crash_workdir(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("crash"))
    flags = gin_flags(
        workdir,
        "--gin.TrainerConfig.steps=2",
        "--gin.TrainerConfig.eval_every=2",
        "--gin.TrainerConfig.checkpoint_every=2",
    )
    whole = tmp_path_factory.mktemp("whole") / "run"
    done = jaxprompt_command(["train", *flags, f"--output_dir={whole}"])
    assert done.returncode == 0, done.stderr[-2000:]
    return flags, whole


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.slow
def test_a_kill_at_any_point_of_a_save_resumes_to_the_same_files(crash_workdir, tmp_path, point):
    """`JAXPROMPT_CRASH_AT=k` ends `jaxprompt train` (os._exit, no cleanup: a kill) at the
    k-th point of its save; the same command then finishes, and every file of the saved
    prompt directories equals the uninterrupted run's, byte for byte; predict reads it."""
    flags, whole = crash_workdir
    out = tmp_path / "run"
    crashed = jaxprompt_command(
        ["train", *flags, f"--output_dir={out}"], env={"JAXPROMPT_CRASH_AT": str(point)}
    )
    assert crashed.returncode == 99, crashed.stderr[-2000:]
    resumed = jaxprompt_command(["train", *flags, f"--output_dir={out}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in SAVED:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), (point, name)
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    workdir = pathlib.Path(flags[2].split("'")[1]).parent
    (tmp_path / "in.jsonl").write_text('{"text": "great fun"}\n')
    predicted = jaxprompt_command(
        [
            "predict",
            "--prompt",
            str(out),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ]
    )
    assert predicted.returncode == 0 and workdir.exists(), predicted.stderr[-2000:]


@pytest.mark.slow
def test_a_signal_during_the_final_save_is_not_dropped(tmp_path):
    """SIGINT arriving after the loop's last look (here: while the final checkpoint is
    written) ends the run with the save finished and TrainingInterrupted (exit 130)."""
    from jaxprompt.training import checkpointer

    original = checkpointer.PromptCheckpointer.save

    def save_then_signal(self, step, state, meta, best=False):
        original(self, step, state, meta, best)
        if step == STEPS:
            signal.raise_signal(signal.SIGINT)

    checkpointer.PromptCheckpointer.save = save_then_signal
    try:
        with pytest.raises(TrainingInterrupted, match="SIGINT received during the last step"):
            run(tmp_path, interrupting_batches(None))
    finally:
        checkpointer.PromptCheckpointer.save = original
    assert (tmp_path / "checkpoints" / str(STEPS) / "prompt.npy").exists()
