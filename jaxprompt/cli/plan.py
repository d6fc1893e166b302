"""`jaxprompt plan`: compile the step `jaxprompt train` would run, for a TPU slice, before any
VM exists (libtpu's deviceless compiler), and say whether it fits and how long it takes.

  jaxprompt plan --gin_file=runs/paper_xxl_v5e_8.gin \\
      --gin.train.model="'t5_1_1_lm100k_xxl'" --gin.train.task="'super_glue_rte'" \\
      --topology v5e-8 [--mesh auto] [--chip_hour_price 1.20]

Takes the same --gin_file / --gin.KEY=VALUE flags as `jaxprompt train` and reads only the
model's shapes (a preset name, config.json, or T5X metadata), never its weights. Exit
status: 0 fits, 1 does not fit, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import os

from jaxprompt.cli.common import CliError, int_list

FITS, DOES_NOT_FIT = 0, 1


def _devices(args):
    if args.cpu_devices:
        import jax

        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.cpu_devices}"
        )
        jax.config.update("jax_platforms", "cpu")
        devices = jax.devices()
        if len(devices) != args.cpu_devices:
            raise CliError(
                f"--cpu_devices {args.cpu_devices}: JAX already started with "
                f"{len(devices)} CPU devices in this process."
            )
        return devices, f"{args.cpu_devices} CPU devices"
    if not args.topology:
        raise CliError("give --topology (e.g. v5e-8, v4-8, v3-32, v5e:2x4) or --cpu_devices N.")
    from jaxprompt.planning.topology import target_devices, topology_name

    return (
        target_devices(args.topology, megacore=not args.no_megacore),
        f"{args.topology} ({topology_name(args.topology)})",
    )


def _peaks(args, device):
    if args.peaks:
        tflops, gbps = (float(x) for x in args.peaks.split(","))
        return tflops * 1e12, gbps * 1e9
    from jaxprompt.planning.topology import device_peaks

    return device_peaks(device)


def _describe(run, config, param_dtype) -> str:
    s = run.settings
    return (
        f"compute {config.dtype}, weights {param_dtype}, scan_layers {config.scan_layers}, "
        f"remat {config.remat_policy}; batch {s.batch_size}, inputs {s.inputs_length} + "
        f"prompt {s.prompt_length}, targets {s.targets_length}"
        + (f", deep prompt {s.deep_prompt_length}" if s.deep_prompt_length else "")
    )


def _print_steps(plans, hbm_gib) -> None:
    print(
        f"{'step':<7}{'args GiB':>9}{'out GiB':>9}{'temp GiB':>10}{'alias GiB':>10}"
        f"{'peak GiB':>10}{'of HBM':>8}{'TFLOP/dev':>10}{'compile s':>10}  HLO"
    )
    for p in plans:
        if p.error:
            print(f"{p.name:<7}does not fit: {p.error}")
            continue
        share = f"{100 * p.peak_gib / hbm_gib:7.0f}%" if hbm_gib else f"{'-':>8}"
        print(
            f"{p.name:<7}{p.argument_gib:9.2f}{p.output_gib:9.2f}{p.temp_gib:10.2f}"
            f"{p.alias_gib:10.2f}{p.peak_gib:10.2f}{share}{p.tflop:10.2f}{p.compile_s:10.1f}"
            f"  {p.hlo_fingerprint}"
        )


def _print_estimate(e, run, devices, price) -> None:
    from jaxprompt.planning.topology import chips_per_device

    chips = len(devices) * chips_per_device(devices[0])
    hours = e.step_s * run.trainer.steps / 3600
    line = (
        f"estimate: step >= {1000 * e.step_s:.4g} ms ({e.bound}-bound: compute "
        f"{1000 * e.compute_s:.4g} ms, memory {1000 * e.memory_s:.4g} ms; {e.tflop:.4g} "
        f"TFLOP, {e.gbytes:.4g} GB per device), {run.settings.batch_size / e.step_s:.4g} "
        f"examples/s, {run.trainer.steps} steps in {hours:.3g} h, best-case MFU "
        f"{100 * e.mfu:.0f} %, {chips * hours:.3g} chip-hours"
    )
    print(line + (f" (${chips * hours * price:,.0f} at ${price:g}/chip-hour)" if price else ""))


def _suggest(run, config, shapes, devices) -> str:
    """The nearest setting that fits: one change at a time, cheapest first."""
    from jaxprompt.planning.plan import meshes, plan_run, with_mesh, with_model

    candidates = []
    kind = type(config).__name__  # T5Config or DecoderConfig
    if config.remat_policy != "full":
        candidates.append(
            (f"--gin.{kind}.remat_policy=\"'full'\"", with_model(run, config, remat_policy="full"))
        )
    if not config.scan_layers:
        candidates.append(
            (f"--gin.{kind}.scan_layers=True", with_model(run, config, scan_layers=True))
        )
    if (run.settings.dtype or shapes[1]) != "bfloat16":
        candidates.append(
            (
                "--gin.train.dtype=\"'bfloat16'\"",
                dataclasses.replace(
                    run, settings=dataclasses.replace(run.settings, dtype="bfloat16")
                ),
            )
        )
    if config.dtype != "bfloat16":
        candidates.append(
            (f"--gin.{kind}.dtype=\"'bfloat16'\"", with_model(run, config, dtype="bfloat16"))
        )
    current = tuple(run.trainer.mesh_shape or (len(devices), 1))
    for mesh in sorted(meshes(len(devices)), key=lambda m: -m[1]):
        if mesh != current:
            candidates.append((f'--gin.TrainerConfig.mesh_shape="{mesh}"', with_mesh(run, mesh)))
    for flag, candidate in candidates:
        try:
            if plan_run(candidate, *shapes, devices, with_eval=False)[0].fits:
                return f"it fits with {flag}"
        except ValueError:
            continue  # e.g. a mesh whose data axis does not divide the batch
    return "no single change fits (try a larger slice)"


def _auto_mesh(run, shapes, devices, peaks) -> tuple:
    from jaxprompt.planning.plan import estimate, meshes, plan_run, with_mesh

    rows = []
    print(f"{'mesh (data, model)':<20}{'train peak GiB':>15}{'step ms':>11}  verdict")
    for mesh in meshes(len(devices)):
        candidate = with_mesh(run, mesh)
        try:
            train = plan_run(candidate, *shapes, devices, with_eval=False)[0]
        except ValueError as e:
            print(f"{str(mesh):<20}{'-':>15}{'-':>11}  invalid: {str(e)[:90]}")
            continue
        step_ms = float("nan")
        if train.fits and peaks:
            try:
                step_ms = 1000 * estimate(candidate, *shapes, devices, peaks).step_s
            except RuntimeError:
                pass
        verdict = "fits" if train.fits else f"does not fit: {train.error[:70]}"
        print(f"{str(mesh):<20}{train.peak_gib:15.3g}{step_ms:11.4g}  {verdict}", flush=True)
        if train.fits:
            rows.append((step_ms if step_ms == step_ms else train.peak_gib, mesh))
    if not rows:
        return None
    best = min(rows)[1]
    print(
        f"best mesh: {best} ("
        + ("fastest estimated step" if peaks else "lowest peak")
        + f' among those that fit): --gin.TrainerConfig.mesh_shape="{best}"'
    )
    return best


def run(args) -> int:
    from jaxprompt.checkpoints import read_model_shapes
    from jaxprompt.cli.configure import configured_run
    from jaxprompt.experiments.runs import model_config
    from jaxprompt.planning.plan import estimate, plan_run, with_mesh
    from jaxprompt.planning.topology import GIB, device_hbm_bytes

    if args.cpu_devices is not None and args.cpu_devices < 1:
        raise CliError(f"--cpu_devices {args.cpu_devices}: give a number of devices >= 1.")
    configured = configured_run(args.gin_file, list(args.gin_bindings))
    if not configured.settings.model:
        raise CliError(
            "give the model: --gin.train.model=\"'t5_1_1_lm100k_xxl'\" or "
            "\"'gemma3_27b'\" (a preset name), a Hugging Face directory, a GGUF file or a "
            "T5X checkpoint."
        )
    devices, target = _devices(args)
    if args.mesh and args.mesh != "auto":
        configured = with_mesh(configured, int_list(args.mesh, "--mesh"))
    shapes = read_model_shapes(configured.settings.model)
    config = model_config(configured, shapes[0])
    param_dtype = configured.settings.dtype or shapes[1]
    hbm = device_hbm_bytes(devices[0])
    hbm_gib = hbm / GIB if hbm else None
    peaks = _peaks(args, devices[0])
    print(
        f"jaxprompt plan: {configured.settings.model} on {target}: {len(devices)} x "
        f"{devices[0].device_kind}" + (f", {hbm_gib:.1f} GiB HBM each" if hbm_gib else "")
    )
    print(f"run: {_describe(configured, config, param_dtype)}")
    if args.mesh == "auto":
        best = _auto_mesh(configured, shapes, devices, peaks)
        if best is None:
            print("verdict: does not fit on any mesh.")
            return DOES_NOT_FIT
        configured = with_mesh(configured, best)
    mesh = tuple(configured.trainer.mesh_shape or (len(devices), 1))
    print(f"mesh (data, model) = {mesh}")
    plans = plan_run(configured, *shapes, devices, with_eval=not args.no_eval)
    _print_steps(plans, hbm_gib)
    train = plans[0]
    fits = all(p.fits for p in plans) and (hbm_gib is None or train.peak_gib <= hbm_gib)
    if not fits:
        print(f"verdict: does NOT fit; {_suggest(configured, config, shapes, devices)}.")
        return DOES_NOT_FIT
    print(
        "verdict: fits"
        + (f" (train peak {train.peak_gib:.2f} of {hbm_gib:.1f} GiB per device)" if hbm_gib else "")
    )
    if peaks and not args.no_estimate:
        try:
            _print_estimate(
                estimate(configured, *shapes, devices, peaks),
                configured,
                devices,
                args.chip_hour_price,
            )
        except RuntimeError as failure:
            print(f"estimate: none ({failure})")
    return FITS


def add_parser(sub) -> None:
    from jaxprompt.cli.train import add_gin_flags

    p = sub.add_parser(
        "plan",
        help="compile the train step for a TPU slice: memory, time, cost (no TPU, no weights)",
    )
    add_gin_flags(p)
    p.add_argument(
        "--topology",
        help="TPU slice (v5e-8, v4-8, v3-32, ...) or jax topology "
        "(v5e:2x4, v4:2x2x1, v3:4x4); needs libtpu",
    )
    p.add_argument("--cpu_devices", type=int, help="plan for N simulated CPU devices instead")
    p.add_argument(
        "--mesh",
        help="data,model (overrides TrainerConfig.mesh_shape), or 'auto': "
        "every mesh ranked by estimated step time",
    )
    p.add_argument(
        "--no_megacore",
        action="store_true",
        help="v4/v5p: one device per TensorCore instead of per chip",
    )
    p.add_argument("--chip_hour_price", type=float, help="USD per chip-hour, for the cost")
    p.add_argument(
        "--peaks", help="peak TFLOP/s,GB/s per device (default: the chip's published figures)"
    )
    p.add_argument("--no_eval", action="store_true", help="plan the train step only")
    p.add_argument("--no_estimate", action="store_true", help="skip the roofline estimate")
    p.set_defaults(func=run)
