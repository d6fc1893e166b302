"""Many plans in one table: thin loops over the functions `jaxprompt plan` runs.

One plan is `jaxprompt plan` (the run as `jaxprompt train` builds it); this tool repeats it
over model sizes or over execution settings, with the same gin flags:

    python tools/plan_memory.py --table --gin_file=runs/prompt_tuning.gin \\
        --gin.T5Config.scan_layers=True --gin.T5Config.remat_policy="'full'" \\
        --gin.T5Config.dtype="'bfloat16'" --gin.train.dtype="'bfloat16'" \\
        --gin.TrainerConfig.mesh_shape="(1, 8)" --topology v5e-8      # T5.1.1 Small ... XXL
    python tools/plan_memory.py --ablation --gin_file=runs/paper_xxl_v3_32.gin \\
        --gin.train.model="'t5_1_1_lm100k_xxl'" --topology v3-32       # what each setting buys
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import _common  # noqa: F401  (puts the repository on sys.path)

SIZES = ("small", "base", "large", "xl", "xxl")
ABLATION = (
    ("as configured", {}, None),
    ("remat minimal", {"remat_policy": "minimal"}, None),
    ("no remat", {"remat_policy": "none"}, None),
    ("float32 weights", {}, "float32"),
    ("per-layer (no scan)", {"scan_layers": False}, None),
    ("float32 compute", {"dtype": "float32"}, None),
)


def main() -> int:
    from jaxprompt.checkpoints import read_model_shapes
    from jaxprompt.cli.configure import configured_run
    from jaxprompt.cli.main import _split_gin_flags
    from jaxprompt.planning.plan import estimate, plan_run, with_model
    from jaxprompt.planning.topology import device_peaks, target_devices

    argv, bindings = _split_gin_flags(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", default=[])
    parser.add_argument("--topology", required=True, help="v5e-8, v4-8, v3-32, v5e:2x4, ...")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--table", action="store_true", help="T5.1.1-LM-adapted Small ... XXL")
    mode.add_argument("--ablation", action="store_true", help="one setting changed at a time")
    args = parser.parse_args(argv)
    devices = target_devices(args.topology)
    peaks = device_peaks(devices[0])
    if args.table:
        variants = [(size, [f"train.model = 't5_1_1_lm100k_{size}'"], {}, None) for size in SIZES]
    else:
        variants = [(label, [], fields, dtype) for label, fields, dtype in ABLATION]
    print(f"{args.topology}: {' '.join(args.gin_file)} {' '.join(bindings)}")
    print(
        f"{'plan':<24}{'train peak GiB':>15}{'eval peak GiB':>14}{'step ms':>9}"
        f"{'bound':>9}{'hours':>8}"
    )
    for label, extra, fields, dtype in variants:
        run = configured_run(args.gin_file, bindings + extra)
        shapes = read_model_shapes(run.settings.model)
        run = with_model(run, shapes[0], **fields)
        if dtype:
            run = dataclasses.replace(run, settings=dataclasses.replace(run.settings, dtype=dtype))
        train, evaluation = plan_run(run, *shapes, devices)
        if not train.fits:
            print(f"{label:<24}does not fit: {train.error[:100]}", flush=True)
            continue
        e = estimate(run, *shapes, devices, peaks)
        print(
            f"{label:<24}{train.peak_gib:15.2f}{evaluation.peak_gib:14.2f}"
            f"{1000 * e.step_s:9.1f}{e.bound:>9}{e.step_s * run.trainer.steps / 3600:8.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
