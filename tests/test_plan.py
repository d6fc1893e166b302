"""One run, planned and launched as typed: `jaxprompt plan` compiles the step `jaxprompt train`
runs; T5Config execution bindings take effect; bad settings are refused in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxprompt.cli.main import main
from tests.cli_helpers import gin_flags, jaxprompt_command, make_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("plan"))


@pytest.mark.parametrize("method", ["prompt", "residual"])
@pytest.mark.slow
def test_plan_fingerprints_are_the_steps_train_compiles(workdir, tmp_path, method):
    """The optimized HLO XLA dumps while `jaxprompt train` runs equals what `jaxprompt plan`
    compiles for the same flags: the plan is the run (2 devices, a model-parallel mesh;
    plain prompt tuning, and the residual prompt encoder)."""
    from jaxprompt.planning.plan import hlo_fingerprint

    extra = (
        ["--gin_file=runs/residual_prompt_tuning.gin", "--gin.train.prompt_encoder_bottleneck=32"]
        if method == "residual"
        else []
    )
    flags = gin_flags(
        workdir,
        *extra,
        "--gin.TrainerConfig.steps=2",
        "--gin.TrainerConfig.eval_every=2",
        "--gin.TrainerConfig.mesh_shape=(1, 2)",
    )
    dump = tmp_path / "dump"
    trained = jaxprompt_command(
        ["train", *flags, f"--output_dir={tmp_path / 'run'}"],
        env={
            "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 --xla_dump_to={dump} "
            "--xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*_step",
            # A step read from the tests' persistent compilation cache is not compiled, so
            # XLA would dump nothing for it.
            "JAX_ENABLE_COMPILATION_CACHE": "false",
        },
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    ran = {}
    for name in os.listdir(dump):
        match = re.fullmatch(
            r"module_\d+\.jit_(train|eval)_step\.cpu_after_optimizations\.txt", name
        )
        if match:
            ran[match.group(1)] = hlo_fingerprint((dump / name).read_text())
    assert set(ran) == {"train", "eval"}, sorted(os.listdir(dump))[:20]

    planned = jaxprompt_command(["plan", *flags, "--cpu_devices", "2"])
    assert planned.returncode == 0, planned.stderr[-2000:]
    rows = {
        line.split()[0]: line.split()[-1]
        for line in planned.stdout.splitlines()
        if line.startswith(("train ", "eval "))
    }
    assert rows == ran, planned.stdout
    assert "verdict: fits" in planned.stdout and "mesh (data, model) = (1, 2)" in planned.stdout


def _losses(output_dir) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["split"] == "train"]


@pytest.mark.slow
def test_scan_remat_bf16_change_the_step_but_not_the_losses(workdir, tmp_path, capsys):
    from jaxprompt.checkpoints import read_model_shapes
    from jaxprompt.cli.configure import configured_run
    from jaxprompt.planning.plan import plan_run

    common = [
        "--gin.TrainerConfig.steps=3",
        "--gin.TrainerConfig.eval_every=0",
        "--gin.TrainerConfig.log_every=1",
        "--gin.StepConfig.enable_dropout=False",
        "--gin.train.eval_split=None",
    ]
    fast = [
        "--gin.T5Config.scan_layers=True",
        "--gin.T5Config.remat_policy='full'",
        "--gin.T5Config.dtype='bfloat16'",
    ]
    runs = {}
    for name, extra in (("plain", []), ("fast", fast)):
        flags = gin_flags(workdir, *common, *extra)
        assert main(["train", *flags, f"--output_dir={tmp_path / name}"]) == 0
        runs[name] = _losses(tmp_path / name)
        info = json.loads((tmp_path / name / "model_info.json").read_text())
        runs[name + "_info"] = info["execution"]
        bindings = [
            f[len("--gin.") :].replace("=", " = ", 1) for f in flags if f.startswith("--gin.")
        ]
        files = [f.split("=", 1)[1] for f in flags if f.startswith("--gin_file")]
        run = configured_run(files, bindings)
        runs[name + "_plan"] = plan_run(
            run, *read_model_shapes(run.settings.model), jax.devices()[:1], with_eval=False
        )[0]
    assert len(runs["plain"]) == len(runs["fast"]) == 3
    np.testing.assert_allclose(runs["fast"], runs["plain"], rtol=2e-2)
    assert runs["plain"] != runs["fast"]  # bfloat16 compute really ran
    assert runs["plain_info"] == {
        "dtype": "float32",
        "param_dtype": "float32",
        "scan_layers": False,
        "remat_policy": "none",
        "mesh_shape": None,
    }
    assert runs["fast_info"]["dtype"] == "bfloat16" and runs["fast_info"]["scan_layers"]
    assert runs["fast_info"]["remat_policy"] == "full"
    plain, fast_plan = runs["plain_plan"], runs["fast_plan"]
    assert plain.hlo_fingerprint != fast_plan.hlo_fingerprint
    assert plain.temp_gib != fast_plan.temp_gib  # XLA's memory analysis of another program

    # Resuming the scanned run per-layer is allowed and says what changed.
    capsys.readouterr()
    flags = gin_flags(workdir, *common, "--gin.TrainerConfig.steps=4")
    assert main(["train", *flags, f"--output_dir={tmp_path / 'fast'}"]) == 0
    assert "scan_layers True -> False" in capsys.readouterr().out
    assert len(_losses(tmp_path / "fast")) == 4


@pytest.mark.parametrize(
    "binding, message",
    [
        ("T5Config.d_model=999", r"T5Config.d_model = 999 but the model .* has 16"),
        ("T5Config.remat_policy='bogus'", r"remat_policy='bogus' must be 'none', 'full'"),
        ("T5Config.num_heads=3", r"T5Config.num_heads = 3 but .* has 2"),
    ],
)
def test_bad_t5config_bindings_are_refused(workdir, tmp_path, capsys, binding, message):
    flags = gin_flags(workdir, "--gin.TrainerConfig.steps=1", f"--gin.{binding}")
    assert main(["train", *flags, f"--output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_binding_nothing_reads_is_refused(workdir, tmp_path, capsys):
    flags = [
        "--gin_file=runs/prompt_tuning.gin",
        f"--gin.train.model='{workdir / 'model'}'",
        "--gin.train.task='sst2'",
        f"--gin.from_files.train='{workdir / 'train.csv'}'",
    ]
    assert main(["train", *flags, f"--output_dir={tmp_path / 'run'}"]) == 2
    assert "nothing reads ['from_files.train']" in capsys.readouterr().err


def test_model_gin_file_checks_the_checkpoint(workdir, tmp_path, capsys):
    flags = gin_flags(workdir, "--gin_file=models/t5_1_1_small.gin")
    assert main(["plan", *flags, "--cpu_devices", "1"]) == 2
    err = capsys.readouterr().err
    assert "T5Config.d_model = 512 but the model" in err and "has 16" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--topology", "v9-8"], r"Unknown TPU slice or topology 'v9-8'. Known slices: v3-8, "),
        (["--cpu_devices", "1", "--mesh", "2,2"], r"Mesh shape \(2, 2\) .* needs 4 devices; 1 "),
    ],
)
def test_plan_bad_targets_are_one_line(workdir, capsys, args, message):
    assert main(["plan", *gin_flags(workdir), *args]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_plan_batch_the_data_axis_does_not_divide(workdir):
    done = jaxprompt_command(
        ["plan", *gin_flags(workdir, "--gin.train.batch_size=3"), "--cpu_devices", "2"]
    )
    assert done.returncode == 2
    assert "Batch size 3 is not divisible by the mesh's 'data' axis of size 2" in done.stderr


def test_plan_without_libtpu_names_the_extra(workdir):
    # A real interpreter in which libtpu cannot be imported (a finder that refuses it).
    code = (
        "import importlib.abc, importlib.util, sys\n"
        "class NoLibtpu(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'libtpu': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoLibtpu())\n"
        "from jaxprompt.cli.main import main\n"
        f"sys.exit(main(['plan', *{gin_flags(workdir)!r}, '--topology', 'v5e-8']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-1000:]
    assert "pip install 'jaxprompt[tpu]'" in done.stderr


needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="libtpu (pip install 'jaxprompt[tpu]') compiles for TPU",
)


@needs_libtpu
@pytest.mark.slow
def test_plan_for_a_tpu_slice_without_a_tpu(workdir):
    """A real deviceless TPU compile of every mesh of a v5e-4 (tiny model: seconds)."""
    done = jaxprompt_command(
        [
            "plan",
            *gin_flags(workdir, "--gin.T5Config.scan_layers=True"),
            "--topology",
            "v5e-4",
            "--mesh",
            "auto",
            "--chip_hour_price",
            "1.2",
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    out = done.stdout
    assert "4 x TPU v5 lite, 16.0 GiB HBM each" in out
    for mesh in ("(4, 1)", "(2, 2)", "(1, 4)"):
        assert re.search(rf"^{re.escape(mesh)}\s+[\d.e-]+\s+[\d.e-]+\s+fits", out, re.M), out
    assert "best mesh:" in out and "verdict: fits" in out
    estimate = re.search(
        r"step >= ([\d.e-]+) ms .*\), ([\d.e+-]+) examples/s, 30000 steps "
        r"in ([\d.e-]+) h",
        out,
    )
    step_ms, examples, hours = (float(x) for x in estimate.groups())
    assert examples == pytest.approx(4 / (step_ms / 1000), rel=2e-2)
    assert hours == pytest.approx(step_ms / 1000 * 30000 / 3600, rel=2e-2)


@needs_libtpu
@pytest.mark.slow
def test_plan_that_does_not_fit_exits_1(workdir):
    """Logits of a 65,536-row batch over a 32,128-piece vocabulary overflow one v5e chip's
    16 GiB whatever the remat or dtype: the plan says so and exits 1."""
    done = jaxprompt_command(
        [
            "plan",
            *gin_flags(workdir, "--gin.train.batch_size=65536"),
            "--topology",
            "v5e-1",
            "--no_eval",
        ]
    )
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "verdict: does NOT fit; no single change fits (try a larger slice)." in done.stdout
