"""Per-device memory plan of jaxprompt's real train and eval steps, compiled ahead of time.

No weights are allocated: the frozen params, train state and batch are ShapeDtypeStructs
with shardings, and `jax.jit(...).lower(...).compile()` runs XLA's real compiler for the
target. Targets:
  --topology v3:4x4          TPU v3-32 (32 cores, 16 GiB each), deviceless: needs the
                             `libtpu` wheel (pip install 'jaxprompt[tpu]'); also v5e:4x4,
                             v4:2x2x1 (v4-8: 4 chips as megacore devices of 32 GiB), ...
  --cpu_devices 8            simulated CPU devices (always available)

    python tools/plan_memory.py --preset t5_1_1_xxl --topology v3:4x4 --mesh 4,8
    python tools/plan_memory.py --table --topology v5e:4x4 --mesh 2,8
    python tools/plan_memory.py --ablation --preset t5_1_1_xxl --topology v3:4x4 --mesh 4,8
    python tools/plan_memory.py --preset t5_1_1_xxl --topology v5e:2x4 --mesh 1,8 --estimate \
        --chip_hour_price 1.20

--estimate adds a roofline estimate of the train step: XLA's cost analysis of the compiled,
partitioned step gives FLOPs and bytes accessed per device; the step cannot be faster than
max(FLOPs / peak FLOP/s, bytes / HBM bandwidth) of one device. Under nn.scan XLA counts a
loop body once, so the counts come from per-layer compiles of the same step with 1 and 2
layers per stack, extrapolated linearly to the real depth (exact: the layers are identical).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import _common  # noqa: F401  (puts the repository on sys.path)

GIB = 2 ** 30

# Published peak bf16 FLOP/s and HBM bytes/s per chip, and TensorCores per chip: TPU v3
# 123 TFLOP/s, 900 GB/s, 2 cores (https://cloud.google.com/tpu/docs/v3); v4 275 TFLOP/s,
# 1200 GB/s, 2 cores (https://cloud.google.com/tpu/docs/v4); v5e 197 TFLOP/s, 819 GB/s,
# 1 core (https://cloud.google.com/tpu/docs/v5e). A JAX device is one core (v3), or one
# chip whose two cores act as one "megacore" (v4, v5p): `device.num_cores` says which.
CHIP_PEAKS = {"TPU v3": (123e12, 900e9), "TPU v4": (275e12, 1200e9),
              "TPU v5 lite": (197e12, 819e9)}
CORES_PER_CHIP = {"TPU v3": 2, "TPU v4": 2, "TPU v5 lite": 1}
# TPU generations whose VMs run two cores per chip as one megacore device (as on a real v4-8:
# 4 devices, 32 GiB each); the deviceless compiler otherwise presents one device per core.
MEGACORE_GENERATIONS = ("v4", "v5")


def chips_per_device(device) -> float:
    """The share of a chip one JAX device is (1 for megacore and v5e, 1/2 for a v3 core)."""
    return getattr(device, "num_cores", 1) / CORES_PER_CHIP.get(device.device_kind, 1)


def device_peaks(device) -> tuple[float, float] | None:
    """(peak FLOP/s, HBM bytes/s) of one JAX device, or None without published figures."""
    chip = CHIP_PEAKS.get(device.device_kind)
    return None if chip is None else tuple(x * chips_per_device(device) for x in chip)


@dataclasses.dataclass(frozen=True)
class Plan:
    label: str
    argument_gib: float
    output_gib: float
    temp_gib: float
    alias_gib: float
    peak_gib: float
    tflops: float
    compile_s: float
    error: str = ""  # why XLA refused to compile it (e.g. out of HBM), if it did
    gbytes: float = 0.0  # bytes accessed per device (XLA cost analysis), 1e9


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Roofline bound of one train step on one device (all devices run in parallel)."""

    tflop: float  # per device, full depth
    gbytes: float  # per device, full depth
    compute_s: float
    memory_s: float

    @property
    def step_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def mfu(self) -> float:  # best case: the share of peak FLOP/s at the bound
        return self.compute_s / self.step_s


def devices_for(args):
    if args.topology:
        from jax.experimental import topologies
        generation, shape = args.topology.split(":")
        if generation in MEGACORE_GENERATIONS and not args.no_megacore:
            x, y, *_ = (int(d) for d in shape.split("x"))
            bounds = (min(x, 2), min(y, 2), 1)  # a v4/v5p host holds 2x2x1 chips
            return topologies.get_topology_desc(
                platform="tpu", topology_name=args.topology, chip_config_name="megacore",
                chips_per_host_bounds=bounds, num_slices=1,
                wrap=(False, False, False)).devices
        return topologies.get_topology_desc(platform="tpu",
                                            topology_name=args.topology).devices
    import jax
    return jax.devices()


def plan(preset: str, args, devices, *, param_dtype: str, scan: bool, remat: str,
         label: str = "", with_eval: bool = True, config=None) -> tuple[Plan, ...]:
    """(train plan, eval plan), or (train plan,) without `with_eval`."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    from jaxprompt import partitioning
    from jaxprompt.training import optimizers, step as train
    from jaxprompt.config import T5Config
    from jaxprompt.models.prefixes import expected_shapes
    from jaxprompt.models.t5 import T5, logical_axes, param_shapes

    config = (config or T5Config.preset(preset)).replace(
        dtype=args.compute_dtype, scan_layers=scan, remat_policy=remat)
    mesh = Mesh(np.asarray(devices).reshape(args.mesh), partitioning.MESH_AXES)
    rules = partitioning.DEFAULT_RULES
    shapes = param_shapes(config)
    shardings = partitioning.tree_shardings(shapes, logical_axes(config), mesh, rules)
    frozen = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, jnp.dtype(param_dtype),
                                                             sharding=sh), shapes, shardings)
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    prompt = jax.ShapeDtypeStruct((args.prompt_length, config.d_model), jnp.float32)
    trainable = {"prompt": prompt}
    if args.deep_prompt_length:
        trainable["deep_prompt"] = {
            name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in
            expected_shapes(config, args.deep_prompt_length, decoder=False).items()}
    abstract_state = jax.eval_shape(lambda t: train.init_train_state(t, optimizer, 0), trainable)
    steps = train.shard_steps(T5(config), optimizer, train.StepConfig(), abstract_state, mesh,
                              rules)
    state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                         abstract_state, steps.state_shardings)
    ids = lambda length: jax.ShapeDtypeStruct((args.batch, length), jnp.int32,
                                              sharding=steps.batch_sharding)
    batch = {"encoder_input_tokens": ids(args.inputs), "decoder_input_tokens": ids(args.targets),
             "decoder_target_tokens": ids(args.targets),
             "decoder_loss_weights": jax.ShapeDtypeStruct((args.batch, args.targets),
                                                          jnp.float32,
                                                          sharding=steps.batch_sharding)}

    def compiled_plan(fn, fn_args, name):
        start = time.perf_counter()
        try:
            compiled = fn.lower(*fn_args).compile()
        except jax.errors.JaxRuntimeError as e:
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            nan = float("nan")
            reason = str(e).split("\n")[0].split(": ", 1)[-1]
            return Plan(f"{label or preset} {name}", nan, nan, nan, nan, nan, nan,
                        time.perf_counter() - start, error=reason)
        seconds = time.perf_counter() - start
        memory = compiled.memory_analysis()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        argument, output = memory.argument_size_in_bytes, memory.output_size_in_bytes
        temp, alias = memory.temp_size_in_bytes, memory.alias_size_in_bytes
        peak = argument + output + temp - alias
        return Plan(f"{label or preset} {name}", argument / GIB, output / GIB, temp / GIB,
                    alias / GIB, peak / GIB, float(cost.get("flops", 0.0)) / 1e12, seconds,
                    gbytes=float(cost.get("bytes accessed", 0.0)) / 1e9)

    train_plan = compiled_plan(steps.train_step, (state, frozen, batch), "train")
    if not with_eval:
        return (train_plan,)
    return train_plan, compiled_plan(steps.eval_step, (state.trainable, frozen, batch), "eval")


def estimate(preset: str, args, devices, peaks: tuple[float, float]) -> Estimate:
    """FLOPs and bytes of the full-depth train step, extrapolated from two shallow per-layer
    compiles (1 and 2 layers per stack, or the next depths that compile)."""
    from jaxprompt.config import T5Config
    base = T5Config.preset(preset)

    def counts(encoder: int, decoder: int) -> tuple[float, float]:
        shallow = base.replace(num_layers=encoder, num_decoder_layers=decoder)
        p = plan(preset, args, devices, param_dtype=args.param_dtype, scan=False,
                 remat=args.remat, with_eval=False, config=shallow)[0]
        if p.error:
            raise RuntimeError(f"{preset}: the {encoder}+{decoder}-layer step does not compile: "
                               f"{p.error}")
        return p.tflops, p.gbytes

    if base.num_layers == base.num_decoder_layers:  # every T5.1.1 size
        # Any two depths give the per-layer slope; 1 and 2 are the cheapest compiles. The TPU
        # compiler can refuse one shallow shape while deeper ones compile (v5e-16, mesh (2, 8):
        # Large's 1+1-layer step, "CompileTimeScopedVmemOom"), so try the next depth.
        depths, failures = {}, []
        for depth in (1, 2, 3, 4):
            try:
                depths[depth] = counts(depth, depth)
            except RuntimeError as failure:
                failures.append(str(failure))
            if len(depths) == 2:
                break
        if len(depths) < 2:
            raise RuntimeError("; ".join(failures))
        (a, at_a), (b, at_b) = depths.items()
        full = [x + (base.num_layers - a) * (y - x) / (b - a) for x, y in zip(at_a, at_b)]
    else:
        one = counts(1, 1)
        deeper_encoder, deeper_decoder = counts(2, 1), counts(1, 2)
        full = [o + (base.num_layers - 1) * (e - o) + (base.num_decoder_layers - 1) * (d - o)
                for o, e, d in zip(one, deeper_encoder, deeper_decoder)]
    peak_flops, bandwidth = peaks
    return Estimate(full[0], full[1], full[0] * 1e12 / peak_flops, full[1] * 1e9 / bandwidth)


def print_estimate(preset: str, e: Estimate, args, devices) -> None:
    chips = len(devices) * chips_per_device(devices[0])
    total_h = e.step_s * args.steps / 3600
    line = (f"{preset:<16}{e.tflop:9.2f}{e.gbytes:9.1f}{1000 * e.compute_s:11.1f}"
            f"{1000 * e.memory_s:10.1f}{1000 * e.step_s:9.1f}{args.batch / e.step_s:9.1f}"
            f"{total_h:9.2f}{100 * e.mfu:7.0f}")
    if args.chip_hour_price:
        line += f"{chips * total_h * args.chip_hour_price:10.0f}"
    print(line, flush=True)


def print_estimate_header(args, devices, peaks) -> None:
    print(f"roofline per device: peak {peaks[0] / 1e12:.3g} TFLOP/s, {peaks[1] / 1e9:.4g} GB/s "
          f"({devices[0].device_kind}); {args.steps} steps"
          + (f"; ${args.chip_hour_price}/chip-hour" if args.chip_hour_price else ""))
    print(f"{'model':<16}{'TFLOP':>9}{'GB':>9}{'compute ms':>11}{'memory ms':>10}"
          f"{'step ms':>9}{'ex/s':>9}{'hours':>9}{'MFU%':>7}"
          + (f"{'cost $':>10}" if args.chip_hour_price else ""), flush=True)


def measure_cpu_peaks() -> tuple[float, float]:
    """(FLOP/s of a 2048^2 float32 matmul, bytes/s of a 256 MiB copy) on this CPU."""
    import numpy as np
    a = np.ones((2048, 2048), np.float32)
    seconds = _common.median_seconds(lambda: a @ a, 5)
    big = np.ones(2 ** 26, np.float32)
    copy_s = _common.median_seconds(lambda: big.copy(), 5)
    return 2 * 2048 ** 3 / seconds, 2 * big.nbytes / copy_s  # a copy reads and writes


def print_header(args, devices) -> None:
    print(f"target: {args.topology or f'{len(devices)} CPU devices'} "
          f"({devices[0].device_kind}), mesh (data, model) = {tuple(args.mesh)}; batch "
          f"{args.batch}, inputs {args.inputs} + prompt {args.prompt_length}, targets "
          f"{args.targets}; compute {args.compute_dtype}"
          + (f"; deep prompt {args.deep_prompt_length} per encoder layer"
             if args.deep_prompt_length else ""))
    print(f"{'step':<40}{'args GiB':>9}{'out GiB':>9}{'temp GiB':>10}{'alias GiB':>10}"
          f"{'peak GiB':>10}{'TFLOP/dev':>10}{'compile s':>11}", flush=True)


def print_plan(p: Plan) -> None:
    if p.error:
        print(f"{p.label:<40}does not fit: {p.error}", flush=True)
        return
    print(f"{p.label:<40}{p.argument_gib:9.2f}{p.output_gib:9.2f}{p.temp_gib:10.2f}"
          f"{p.alias_gib:10.2f}{p.peak_gib:10.2f}{p.tflops:10.2f}{p.compile_s:11.1f}", flush=True)


def print_footer() -> None:
    print("peak = arguments + outputs + temporaries - aliased (donated) bytes, per device, from "
          "compiled.memory_analysis(). TFLOP/dev: XLA's cost_analysis() of the partitioned "
          "(per-device) step; XLA counts a while loop's body once, so under nn.scan it covers "
          "one layer per stack (use --no_scan for the full count).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="t5_1_1_xxl")
    parser.add_argument("--topology", help="TPU topology, e.g. v3:4x4, v5e:4x4 (needs libtpu)")
    parser.add_argument("--cpu_devices", type=int, help="simulate N CPU devices instead")
    parser.add_argument("--no_megacore", action="store_true",
                        help="v4/v5p: one device per TensorCore instead of per chip")
    parser.add_argument("--mesh", default=None, help="data,model (default: all devices, 1)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=16)
    parser.add_argument("--prompt_length", type=int, default=100)
    parser.add_argument("--deep_prompt_length", type=int, default=0,
                        help="also train a deep prompt of this length in every encoder layer")
    parser.add_argument("--param_dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--compute_dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--no_scan", action="store_true", help="per-layer params, no nn.scan")
    parser.add_argument("--remat", default="full", choices=["none", "full", "minimal"])
    parser.add_argument("--table", action="store_true", help="every T5.1.1 size")
    parser.add_argument("--ablation", action="store_true",
                        help="what bf16 weights, remat and scan each buy for --preset")
    parser.add_argument("--estimate", action="store_true",
                        help="roofline step time, examples/s, --steps hours, MFU, cost")
    parser.add_argument("--steps", type=int, default=30000, help="steps of the run to cost")
    parser.add_argument("--chip_hour_price", type=float, help="USD per chip-hour")
    parser.add_argument("--peaks", help="peak TFLOP/s,GB/s per device (default: the TPU "
                                        "table; 'measure' on CPU)")
    args = parser.parse_args()
    if args.cpu_devices:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.cpu_devices}")
        os.environ["JAX_PLATFORMS"] = "cpu"
    devices = devices_for(args)
    args.mesh = tuple(int(x) for x in args.mesh.split(",")) if args.mesh else (len(devices), 1)

    if args.estimate:
        if args.peaks == "measure":
            peaks = measure_cpu_peaks()
        elif args.peaks:
            tflops, gbps = (float(x) for x in args.peaks.split(","))
            peaks = (tflops * 1e12, gbps * 1e9)
        else:
            peaks = device_peaks(devices[0])
            if peaks is None:
                parser.error(f"no published peaks for {devices[0].device_kind!r}: pass --peaks "
                             "TFLOPS,GBPS or measure")
        print_estimate_header(args, devices, peaks)
        sizes = ("small", "base", "large", "xl", "xxl") if args.table else None
        for preset in [f"t5_1_1_{s}" for s in sizes] if sizes else [args.preset]:
            try:
                print_estimate(preset, estimate(preset, args, devices, peaks), args, devices)
            except RuntimeError as failure:
                if not args.table:
                    raise
                print(f"{preset:<16}no estimate: {failure}", flush=True)  # the table goes on
        print("TFLOP, GB: per device per step (XLA cost analysis, full depth); step = max("
              "compute, memory): a lower bound; MFU: best case at that bound.")
        return
    print_header(args, devices)
    if args.table:
        for size in ("small", "base", "large", "xl", "xxl"):
            for p in plan(f"t5_1_1_{size}", args, devices, param_dtype=args.param_dtype,
                          scan=not args.no_scan, remat=args.remat):
                print_plan(p)
    elif args.ablation:
        variants = [("bf16 weights, scan, remat full", "bfloat16", True, "full"),
                    ("bf16 weights, scan, remat minimal", "bfloat16", True, "minimal"),
                    ("bf16 weights, scan, no remat", "bfloat16", True, "none"),
                    ("float32 weights, scan, remat full", "float32", True, "full"),
                    ("bf16 weights, per-layer, remat full", "bfloat16", False, "full")]
        for label, dtype, scan, remat in variants:
            print_plan(plan(args.preset, args, devices, param_dtype=dtype, scan=scan,
                            remat=remat, label=label, with_eval=False)[0])
    else:
        for p in plan(args.preset, args, devices, param_dtype=args.param_dtype,
                      scan=not args.no_scan, remat=args.remat):
            print_plan(p)
    print_footer()


if __name__ == "__main__":
    main()
