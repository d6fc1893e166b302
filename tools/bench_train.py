"""Train-step throughput: jaxprompt vs Hugging Face PEFT prompt tuning, each side in float32
and in bfloat16, side by side.

    python tools/bench_train.py                              # t5_1_1_small, P=100, batch 8, 128/8
    python tools/bench_train.py --preset tiny --batch 32 --inputs 64 --targets 4   # quickstart

Each configuration runs in its own subprocess (so peak RSS is its own) on the same random
model shape, batch and thread count, in --rounds interleaved rounds (A B C, A B C, ...;
medians and the spread of each round's ratios are reported), with Adafactor (lr 0.3, no
parameter scaling) in both. jaxprompt variants are LAYOUT:REMAT:DTYPE (bfloat16: compute
and frozen weights in bfloat16, `T5Config.dtype` and `RunSettings.dtype`); PEFT runs in
float32 and under `torch.autocast("cpu", torch.bfloat16)` (weights and prompt stay float32,
as PEFT trains them). Reported: median step time, examples/s, peak RSS and ratios to PEFT
float32, each side's best; for jaxprompt also the forward (loss only) time, step/forward,
the step's FLOPs (XLA cost analysis of the per-layer variant) and the step's rate as a share
of a 2048^2 matmul in the step's dtype measured in the same process (bfloat16: bf16 x bf16
-> f32, as `jaxprompt.models.dots` runs the model's products).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _common import (
    add_shape_flags,
    median_result,
    median_seconds,
    model_config,
    random_batch,
    random_prompt_step,
)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _matmul_flops_per_second(dtype: str, size: int = 2048, repeats: int = 10) -> float:
    """A size^2 matmul's rate in this process: jax in `dtype` (the model's product)."""
    import jax
    import jax.numpy as jnp

    from jaxprompt.models.dots import einsum

    a = jnp.ones((size, size), dtype)
    dot = jax.jit(lambda x: einsum("ij,jk->ik", x, x))
    return 2 * size**3 / median_seconds(lambda: dot(a).block_until_ready(), repeats)


def _torch_matmul_flops_per_second(dtype: str, size: int = 2048, repeats: int = 10) -> float:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.ones((size, size), dtype=getattr(torch, dtype), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return 2 * size**3 / median_seconds(lambda: (a @ a, sync()), repeats)


def run_jax(args) -> dict:
    import functools

    import jax

    from jaxprompt.training import step as train

    config, steps, state, frozen, batch = random_prompt_step(
        args, args.dtype, args.scan, args.remat
    )
    step_config = train.StepConfig(enable_dropout=False)

    start = time.perf_counter()
    compiled = steps.train_step.lower(state, frozen, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
    forward = jax.jit(functools.partial(train.loss_fn, config=config, step_config=step_config))
    rng = jax.random.PRNGKey(0)

    step_times, forward_times = [], []
    for _ in range(args.warmup):
        state, metrics = compiled(state, frozen, batch)
    jax.block_until_ready(state)
    # Compiled for the placed state the steps return (the first state may be placed apart).
    forward(state.trainable, frozen, batch, rng)[0].block_until_ready()
    for _ in range(args.steps):
        t = time.perf_counter()
        state, metrics = compiled(state, frozen, batch)
        jax.block_until_ready(metrics)
        step_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        forward(state.trainable, frozen, batch, rng)[0].block_until_ready()
        forward_times.append(time.perf_counter() - t)
    step = statistics.median(step_times)
    matmul = _matmul_flops_per_second(args.dtype)
    return {
        "framework": "jaxprompt",
        "step_s": step,
        "examples_per_s": args.batch / step,
        "forward_s": statistics.median(forward_times),
        "compile_s": compile_seconds,
        "step_flops": flops,
        "achieved_flops_per_s": flops / step,
        "matmul_flops_per_s": matmul,
        "peak_rss_mib": _peak_rss_mib(),
        "loss": float(metrics["loss"]),
    }


def run_peft(args) -> dict:
    import numpy as np
    import peft
    import torch
    import transformers
    from transformers.optimization import Adafactor

    from jaxprompt.decoder_config import DecoderConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = model_config(args.preset)
    decoder_only = isinstance(config, DecoderConfig)
    if decoder_only:
        # transformers' class of the same architecture (Gemma3ForCausalLM for gemma3_270m).
        hf_config = transformers.AutoConfig.for_model(**config.to_hf_config())
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    else:
        hf_config = transformers.T5Config(**{**config.to_hf_config(), "dropout_rate": 0.0})
        model = transformers.T5ForConditionalGeneration(hf_config)
    model = peft.get_peft_model(
        model.to(device),
        peft.PromptTuningConfig(
            task_type=peft.TaskType.CAUSAL_LM if decoder_only else peft.TaskType.SEQ_2_SEQ_LM,
            num_virtual_tokens=args.prompt_length,
        ),
    )
    model.train()
    optimizer = Adafactor(
        [p for p in model.parameters() if p.requires_grad],
        lr=0.3,
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
        weight_decay=1e-5,
    )
    batch = random_batch(args, config.vocab_size, eos_id=config.eos_id)
    inputs = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    labels = torch.tensor(batch["decoder_target_tokens"], dtype=torch.long)
    if decoder_only:
        # [BOS; input; target], the loss on the target only: the sequence jaxprompt trains
        # on (PEFT places the prompt before BOS; the length is the same).
        bos = torch.full((args.batch, 1), config.bos_id, dtype=torch.long)
        inputs = torch.cat([bos, inputs, labels], dim=1)
        labels = torch.cat([torch.full_like(inputs[:, : -labels.shape[1]], -100), labels], 1)
    inputs, labels = inputs.to(device), labels.to(device)

    autocast = torch.autocast(device, torch.bfloat16, enabled=args.dtype == "bfloat16")

    def step():
        with autocast:
            loss = model(
                input_ids=inputs, attention_mask=torch.ones_like(inputs), labels=labels
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss)  # waits for the device

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return {
        "framework": "peft",
        "step_s": median,
        "examples_per_s": args.batch / median,
        "peak_rss_mib": _peak_rss_mib(),
        "loss": loss,
        "torch": torch.__version__,
        "peft": peft.__version__,
        "threads": torch.get_num_threads(),
        "mean_step_s": float(np.mean(times)),
        "matmul_flops_per_s": _torch_matmul_flops_per_second(args.dtype),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_flags(parser, batch=8)
    parser.add_argument(
        "--jax_variants",
        default="per_layer:none:float32,per_layer:none:bfloat16",
        help="jaxprompt configurations, comma-separated LAYOUT:REMAT:DTYPE with "
        "LAYOUT per_layer|scan, REMAT none|minimal|full, DTYPE "
        "float32|bfloat16",
    )
    parser.add_argument(
        "--peft_dtypes",
        default="float32,bfloat16",
        help="PEFT runs: float32 and/or bfloat16 (autocast)",
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of every configuration (median and spread)",
    )
    parser.add_argument("--only", choices=["jax", "peft"], help="(internal) run one side")
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)  # with --only
    parser.add_argument("--remat", default="none", help=argparse.SUPPRESS)  # with --only
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)  # with --only
    args = parser.parse_args()
    if args.only:
        result = run_jax(args) if args.only == "jax" else run_peft(args)
        print("RESULT " + json.dumps(result))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="3")
    shared = [
        f"--{k}={v}"
        for k, v in vars(args).items()
        if k
        in ("preset", "prompt_length", "batch", "inputs", "targets", "steps", "warmup", "threads")
    ]

    def run_side(side: str, extra: list[str]) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--only", side, *shared, *extra],
            env=env,
            capture_output=True,
            text=True,
        )
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"{side} {extra} run failed:\n{out.stderr[-3000:]}")
        return {**json.loads(line[0][len("RESULT ") :]), "dtype": extra[-1].split("=")[1]}

    configs = [
        (
            f"jaxprompt {layout}, remat {remat}, {dtype}",
            "jax",
            (["--scan"] if layout == "scan" else []) + [f"--remat={remat}", f"--dtype={dtype}"],
        )
        for layout, remat, dtype in (v.split(":") for v in args.jax_variants.split(","))
    ]
    configs += [
        (f"PEFT {dtype}", "peft", [f"--dtype={dtype}"]) for dtype in args.peft_dtypes.split(",")
    ]
    # Interleaved rounds (A B C, A B C, ...): a slow spell of a noisy machine hits every
    # configuration of a round alike, so each round's ratios are fair; report their spread.
    rounds = []
    for index in range(args.rounds):
        rounds.append({name: run_side(side, extra) for name, side, extra in configs})
        print(
            f"round {index + 1}/{args.rounds}: "
            + ", ".join(f"{name} {1000 * r['step_s']:.0f} ms" for name, r in rounds[-1].items()),
            flush=True,
        )
    results = {name: median_result([r[name] for r in rounds]) for name, _, _ in configs}
    base_name = next(name for name, side, _ in configs if side == "peft")
    base = results[base_name]
    # XLA counts a scanned loop body once: FLOP/s use the per-layer count of the same math.
    useful_flops = max(r.get("step_flops", 0.0) for r in results.values())

    print(
        f"config: {args.preset}, P={args.prompt_length}, batch {args.batch}, inputs "
        f"{args.inputs}, targets {args.targets}, {args.threads} threads, median of "
        f"{args.steps} steps after {args.warmup} warm-up; ratios to {base_name}"
    )
    print(
        f"{'':42}{'ms/step':>9}{'ex/s':>7}{'ratio':>7}{'RSS MiB':>9}{'ratio':>7}"
        f"{'step/fwd':>9}{'matmul GF/s':>12}{'% matmul':>9}"
    )
    for name, r in results.items():
        row = (
            f"{name:42}{1000 * r['step_s']:9.1f}{r['examples_per_s']:7.2f}"
            f"{r['examples_per_s'] / base['examples_per_s']:7.2f}{r['peak_rss_mib']:9.0f}"
            f"{r['peak_rss_mib'] / base['peak_rss_mib']:7.2f}"
        )
        row += f"{r['step_s'] / r['forward_s']:9.2f}" if "forward_s" in r else " " * 9
        row += f"{r['matmul_flops_per_s'] / 1e9:12.0f}"
        if "forward_s" in r:
            row += f"{100 * useful_flops / r['step_s'] / r['matmul_flops_per_s']:9.0f}"
        print(row)

    def best(side: str, round_results: dict) -> str:
        return min(
            (n for n, s, _ in configs if s == side), key=lambda n: round_results[n]["step_s"]
        )

    print(f"\nper round (median [min, max] over {args.rounds} rounds):")
    for name, side, _ in configs:
        if name == base_name:
            continue
        speed = [r[name]["examples_per_s"] / r[base_name]["examples_per_s"] for r in rounds]
        memory = [r[name]["peak_rss_mib"] / r[base_name]["peak_rss_mib"] for r in rounds]
        print(
            f"  {name:40} ex/s x{statistics.median(speed):.2f} [{min(speed):.2f}, "
            f"{max(speed):.2f}]   peak RSS x{statistics.median(memory):.2f} "
            f"[{min(memory):.2f}, {max(memory):.2f}]"
        )
    best_ratio = [r[best("peft", r)]["step_s"] / r[best("jax", r)]["step_s"] for r in rounds]
    print(
        f"best against best: jaxprompt ({best('jax', results)}) at "
        f"x{statistics.median(best_ratio):.2f} [{min(best_ratio):.2f}, {max(best_ratio):.2f}] "
        f"the examples/s of PEFT ({best('peft', results)})"
    )
    print(
        f"jaxprompt step: {useful_flops / 1e9:.1f} GFLOP (XLA cost analysis, per-layer); "
        "matmul GF/s: a 2048^2 matmul in the row's dtype, in the row's own process"
    )


if __name__ == "__main__":
    main()
