"""Compile a run's own train and eval steps for a target without allocating anything.

`plan_run` builds the steps through jaxprompt.training.build (as `train()` does), gives
them sharded ShapeDtypeStructs, and runs XLA's real compiler: its memory analysis is the
per-device plan, its cost analysis the roofline estimate. Under nn.scan XLA counts a loop
body once, so `estimate` compiles the same step with 1 and 2 layers per stack (per-layer,
or the next depths that compile) and extrapolates linearly to the real depth (exact: the
layers are identical).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time

import jax

from jaxprompt.config import T5Config
from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.experiments.runs import Run, model_config, step_config, trainable_shapes
from jaxprompt.planning.topology import GIB
from jaxprompt.training.build import abstract_arguments, build_steps


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """One compiled step, per device."""

    name: str  # "train" or "eval"
    argument_gib: float = float("nan")
    output_gib: float = float("nan")
    temp_gib: float = float("nan")
    alias_gib: float = float("nan")
    tflop: float = float("nan")
    gbytes: float = float("nan")  # bytes accessed (XLA cost analysis), 1e9
    compile_s: float = 0.0
    hlo_fingerprint: str = ""  # sha256 of the optimized HLO text, 16 hex digits
    error: str = ""  # why XLA refused to compile it (e.g. out of HBM)

    @property
    def peak_gib(self) -> float:
        """arguments + outputs + temporaries - aliased (donated) bytes."""
        return self.argument_gib + self.output_gib + self.temp_gib - self.alias_gib

    @property
    def fits(self) -> bool:
        return not self.error


_METADATA = re.compile(r',? metadata=\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}')
_DEBUG_SECTIONS = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")


def _canonical_json(value):
    if isinstance(value, dict):
        return {k: _canonical_json(v) for k, v in sorted(value.items()) if v not in ([], {})}
    return [_canonical_json(v) for v in value] if isinstance(value, list) else value


def _canonical_backend_configs(line: str) -> str:
    """backend_config JSON with sorted keys and no empty fields (XLA's dump and
    Compiled.as_text() print the same proto in different orders)."""
    marker, out, start = "backend_config=", [], 0
    decoder = json.JSONDecoder()
    while (at := line.find(marker + "{", start)) >= 0:
        begin = at + len(marker)
        try:
            value, end = decoder.raw_decode(line, begin)
        except ValueError:
            break
        out += [line[start:begin], json.dumps(_canonical_json(value), separators=(",", ":"))]
        start = end
    return "".join(out) + line[start:]


def canonical_hlo(text: str) -> str:
    """Optimized HLO text without source metadata (Python file names, lines, stack frames),
    which depend on who called jit, not on what was compiled; backend configs canonical."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line in _DEBUG_SECTIONS:
            skipping = True
            continue
        if skipping and (not line or line[0] in " \t0123456789"):
            continue
        skipping = False
        kept.append(_canonical_backend_configs(_METADATA.sub("", line)))
    return "\n".join(kept)


def hlo_fingerprint(text: str) -> str:
    """16 hex digits of sha256 over canonical_hlo(text)."""
    return hashlib.sha256(canonical_hlo(text).encode()).hexdigest()[:16]


def compile_plan(name: str, fn, args) -> StepPlan:
    """The plan of `fn.lower(*args).compile()` (its error if XLA refuses it)."""
    start = time.perf_counter()
    try:
        compiled = fn.lower(*args).compile()
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e) and "exceeds" not in str(e):
            raise
        reason = str(e).split("\n")[0].split(": ", 1)[-1]
        return StepPlan(name, compile_s=time.perf_counter() - start, error=reason)
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return StepPlan(
        name,
        memory.argument_size_in_bytes / GIB,
        memory.output_size_in_bytes / GIB,
        memory.temp_size_in_bytes / GIB,
        memory.alias_size_in_bytes / GIB,
        float(cost.get("flops", 0.0)) / 1e12,
        float(cost.get("bytes accessed", 0.0)) / 1e9,
        seconds,
        hlo_fingerprint(compiled.as_text()),
    )


def lowered_steps(
    run: Run,
    checkpoint_config: T5Config,
    stored_dtype: str,
    devices,
    config: T5Config | None = None,
):
    """(steps, train args, eval args) of the run as `jaxprompt train` builds them."""
    s = run.settings
    config = config or model_config(run, checkpoint_config)
    steps, _, abstract_state = build_steps(
        config,
        trainable_shapes(run, config),
        run.optimizer,
        step_config(run),
        run.trainer.mesh_shape,
        run.trainer.logical_axis_rules,
        devices,
    )
    param_dtype = s.dtype or stored_dtype
    state, frozen, batch = abstract_arguments(
        steps, abstract_state, config, param_dtype, s.batch_size, s.inputs_length, s.targets_length
    )
    eval_batch_size = s.eval_batch_size or s.batch_size
    _, _, eval_batch = abstract_arguments(
        steps,
        abstract_state,
        config,
        param_dtype,
        eval_batch_size,
        s.inputs_length,
        s.targets_length,
    )
    return steps, (state, frozen, batch), (state.trainable, frozen, eval_batch)


def plan_run(
    run: Run,
    checkpoint_config: T5Config,
    stored_dtype: str,
    devices,
    with_eval: bool = True,
    config: T5Config | None = None,
) -> tuple[StepPlan, ...]:
    """(train plan, eval plan) of the run on `devices` (or (train plan,))."""
    steps, train_args, eval_args = lowered_steps(
        run, checkpoint_config, stored_dtype, devices, config
    )
    plans = [compile_plan("train", steps.train_step, train_args)]
    if with_eval:
        plans.append(compile_plan("eval", steps.eval_step, eval_args))
    return tuple(plans)


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

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


def estimate(
    run: Run, checkpoint_config: T5Config, stored_dtype: str, devices, peaks: tuple[float, float]
) -> Estimate:
    """FLOPs and bytes of the full-depth train step from shallow per-layer compiles."""
    full = model_config(run, checkpoint_config)

    def compiled(shallow, label: str) -> tuple[float, float]:
        p = plan_run(
            run, checkpoint_config, stored_dtype, devices, with_eval=False, config=shallow
        )[0]
        if p.error:
            raise RuntimeError(f"the {label} step does not compile: {p.error}")
        return p.tflop, p.gbytes

    def counts(encoder: int, decoder: int) -> tuple[float, float]:
        shallow = full.replace(num_layers=encoder, num_decoder_layers=decoder, scan_layers=False)
        return compiled(shallow, f"{encoder}+{decoder}-layer")

    if isinstance(full, DecoderConfig):
        totals = _decoder_totals(full, compiled)
    elif full.num_layers == full.num_decoder_layers:  # every T5.1.1 size
        # The TPU compiler can refuse one shallow shape while deeper ones compile (v5e-16,
        # mesh (2, 8): Large's 1+1-layer step, "CompileTimeScopedVmemOom"): try the next.
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
        totals = [x + (full.num_layers - a) * (y - x) / (b - a) for x, y in zip(at_a, at_b)]
    else:
        one = counts(1, 1)
        deeper_encoder, deeper_decoder = counts(2, 1), counts(1, 2)
        totals = [
            o + (full.num_layers - 1) * (e - o) + (full.num_decoder_layers - 1) * (d - o)
            for o, e, d in zip(one, deeper_encoder, deeper_decoder)
        ]
    peak_flops, bandwidth = peaks
    return Estimate(
        totals[0], totals[1], totals[0] * 1e12 / peak_flops, totals[1] * 1e9 / bandwidth
    )


def _decoder_totals(full: DecoderConfig, compiled) -> list[float]:
    """A decoder-only step's full-depth (TFLOP, GB) from 1- and 2-layer compiles: one extra
    layer of each kind the model has (sliding-window and global attention layers differ)."""
    kinds = full.layer_kinds

    def at(layer_kinds: tuple[str, ...]) -> tuple[float, float]:
        shallow = full.replace(
            num_layers=len(layer_kinds), layer_kinds=layer_kinds, scan_layers=False
        )
        return compiled(shallow, f"{len(layer_kinds)}-layer ({', '.join(layer_kinds)})")

    first = kinds[0]
    one = at((first,))
    totals = list(one)
    for kind in sorted(set(kinds)):
        extra = [b - a for a, b in zip(one, at((first, kind)))]
        count = kinds.count(kind) - (kind == first)
        totals = [t + count * e for t, e in zip(totals, extra)]
    return totals


def meshes(device_count: int) -> list[tuple[int, int]]:
    """Every (data, model) mesh over `device_count` devices, data-parallel first."""
    return [(device_count // m, m) for m in range(1, device_count + 1) if device_count % m == 0]


def with_mesh(run: Run, mesh_shape) -> Run:
    return dataclasses.replace(
        run, trainer=dataclasses.replace(run.trainer, mesh_shape=tuple(mesh_shape))
    )


def with_model(run: Run, config, **fields) -> Run:
    """The run with other execution bindings (e.g. remat_policy='full') of `config`'s class."""
    return dataclasses.replace(
        run,
        model_bindings={**run.model_bindings, **fields},
        model_bindings_class=type(config).__name__,
    )


__all__ = [
    "Estimate",
    "StepPlan",
    "canonical_hlo",
    "compile_plan",
    "estimate",
    "hlo_fingerprint",
    "lowered_steps",
    "meshes",
    "plan_run",
    "with_mesh",
    "with_model",
]
