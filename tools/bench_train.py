"""Train-step throughput: jaxprompt vs Hugging Face PEFT prompt tuning, side by side.

    python tools/bench_train.py                      # t5_1_1_small shape, P=100, batch 8, 128/8
    python tools/bench_train.py --preset t5_1_1_base --steps 5 --rounds 5

Each framework runs in its own subprocess (so peak RSS is its own) on the same random
model shape, batch and thread count, in --rounds interleaved rounds (A B C, A B C, ...;
medians and the spread of each round's ratios are reported), with Adafactor (lr 0.3, no parameter scaling) in
both. jaxprompt runs once per `--jax_variants` entry (default: per-layer without remat,
and layers under nn.scan with the "minimal" remat policy). Reported: median step time,
examples/s, peak RSS and their ratios to PEFT; for jaxprompt also the forward (loss only)
time, step/forward ratio, the step's FLOPs (XLA cost analysis of the per-layer variant:
XLA counts a scanned body once) and achieved FLOP/s against a dense float32 matmul
measured in the same process.
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

from _common import add_shape_flags, median_result, random_batch


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    import jax
    import jax.numpy as jnp
    a = jnp.ones((size, size), jnp.float32)
    dot = jax.jit(lambda x: x @ x)
    dot(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def run_jax(args) -> dict:
    import functools

    import jax

    from jaxprompt import partitioning
    from jaxprompt.training import optimizers, step as train
    from jaxprompt.config import T5Config
    from jaxprompt.models.t5 import T5, init_params

    config = T5Config.preset(args.preset).replace(dropout_rate=0.0, dtype=args.dtype,
                                                  scan_layers=args.scan,
                                                  remat_policy=args.remat)
    frozen = init_params(config, jax.random.key(0))
    optimizer = optimizers.prompt_optimizer(optimizers.OptimizerConfig())
    prompt = jax.random.uniform(jax.random.key(1), (args.prompt_length, config.d_model),
                                minval=-0.5, maxval=0.5)
    state = train.init_train_state({"prompt": prompt}, optimizer, seed=0)
    step_config = train.StepConfig(enable_dropout=False)
    steps = train.shard_steps(T5(config), optimizer, step_config, state, partitioning.make_mesh())
    batch = jax.device_put(random_batch(args, config.vocab_size), steps.batch_sharding)
    frozen = jax.device_put(frozen, steps.frozen_shardings)

    start = time.perf_counter()
    compiled = steps.train_step.lower(state, frozen, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
    forward = jax.jit(functools.partial(train.loss_fn, model=T5(config), step_config=step_config))
    rng = jax.random.PRNGKey(0)
    forward(state.trainable, frozen, batch, rng)[0].block_until_ready()

    step_times, forward_times = [], []
    for _ in range(args.warmup):
        state, metrics = compiled(state, frozen, batch)
    jax.block_until_ready(state)
    for _ in range(args.steps):
        t = time.perf_counter()
        state, metrics = compiled(state, frozen, batch)
        jax.block_until_ready(metrics)
        step_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        forward(state.trainable, frozen, batch, rng)[0].block_until_ready()
        forward_times.append(time.perf_counter() - t)
    step = statistics.median(step_times)
    matmul = _matmul_flops_per_second()
    return {"framework": "jaxprompt", "step_s": step, "examples_per_s": args.batch / step,
            "forward_s": statistics.median(forward_times), "compile_s": compile_seconds,
            "step_flops": flops, "achieved_flops_per_s": flops / step,
            "matmul_flops_per_s": matmul, "peak_rss_mib": _peak_rss_mib(),
            "loss": float(metrics["loss"])}


def run_peft(args) -> dict:
    import numpy as np
    import peft
    import torch
    import transformers
    from transformers.optimization import Adafactor

    from jaxprompt.config import T5Config

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = T5Config.preset(args.preset)
    hf_config = transformers.T5Config(**{**config.to_hf_config(), "dropout_rate": 0.0})
    model = transformers.T5ForConditionalGeneration(hf_config)
    if args.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model = peft.get_peft_model(model, peft.PromptTuningConfig(
        task_type=peft.TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=args.prompt_length))
    model.train()
    optimizer = Adafactor([p for p in model.parameters() if p.requires_grad], lr=0.3,
                          scale_parameter=False, relative_step=False, warmup_init=False,
                          weight_decay=1e-5)
    batch = random_batch(args, config.vocab_size)
    inputs = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    labels = torch.tensor(batch["decoder_target_tokens"], dtype=torch.long)

    def step():
        loss = model(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                     labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss)

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return {"framework": "peft", "step_s": median, "examples_per_s": args.batch / median,
            "peak_rss_mib": _peak_rss_mib(), "loss": loss, "torch": torch.__version__,
            "peft": peft.__version__, "threads": torch.get_num_threads(),
            "mean_step_s": float(np.mean(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_flags(parser, batch=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--jax_variants", default="per_layer:none,scan:minimal",
                        help="jaxprompt configurations, comma-separated LAYOUT:REMAT with "
                             "LAYOUT per_layer|scan and REMAT none|minimal|full")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of every configuration (median and spread)")
    parser.add_argument("--only", choices=["jax", "peft"], help="(internal) run one side")
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)  # with --only
    parser.add_argument("--remat", default="none", help=argparse.SUPPRESS)  # with --only
    args = parser.parse_args()
    if args.only:
        result = run_jax(args) if args.only == "jax" else run_peft(args)
        print("RESULT " + json.dumps(result))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="3")
    shared = [f"--{k}={v}" for k, v in vars(args).items()
              if k not in ("only", "scan", "remat", "jax_variants", "rounds")]

    def run_side(side: str, extra: list[str]) -> dict:
        out = subprocess.run([sys.executable, __file__, "--only", side, *shared, *extra],
                             env=env, capture_output=True, text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"{side} {extra} run failed:\n{out.stderr[-3000:]}")
        return json.loads(line[0][len("RESULT "):])

    configs = [(f"jaxprompt {layout}, remat {remat}", "jax",
                (["--scan"] if layout == "scan" else []) + [f"--remat={remat}"])
               for layout, remat in (v.split(":") for v in args.jax_variants.split(","))]
    configs.append(("PEFT", "peft", []))
    # Interleaved rounds (A B C, A B C, ...): a slow spell of a noisy machine hits every
    # configuration of a round alike, so each round's ratios are fair; report their spread.
    rounds = []
    for index in range(args.rounds):
        rounds.append({name: run_side(side, extra) for name, side, extra in configs})
        print(f"round {index + 1}/{args.rounds}: " + ", ".join(
            f"{name} {1000 * r['step_s']:.0f} ms" for name, r in rounds[-1].items()), flush=True)
    results = {name: median_result([r[name] for r in rounds]) for name, _, _ in configs}
    pt = results["PEFT"]
    # XLA counts a scanned loop body once: FLOP/s use the per-layer count of the same math.
    useful_flops = max(r.get("step_flops", 0.0) for r in results.values())

    print(f"config: {args.preset}, P={args.prompt_length}, batch {args.batch}, "
          f"inputs {args.inputs}, targets {args.targets}, {args.dtype}, {args.threads} threads, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'':34}{'ms/step':>9}{'ex/s':>7}{'x PEFT':>8}{'RSS MiB':>9}{'x PEFT':>8}"
          f"{'step/fwd':>9}{'% matmul':>9}")
    for name, r in results.items():
        row = (f"{name:34}{1000 * r['step_s']:9.1f}{r['examples_per_s']:7.2f}"
               f"{r['examples_per_s'] / pt['examples_per_s']:8.2f}{r['peak_rss_mib']:9.0f}"
               f"{r['peak_rss_mib'] / pt['peak_rss_mib']:8.2f}")
        if "forward_s" in r:
            row += (f"{r['step_s'] / r['forward_s']:9.2f}"
                    f"{100 * useful_flops / r['step_s'] / r['matmul_flops_per_s']:9.0f}")
        print(row)
    print(f"\nratios to PEFT per round (median [min, max] over {args.rounds} rounds):")
    for name, _, _ in configs[:-1]:
        speed = [r[name]["examples_per_s"] / r["PEFT"]["examples_per_s"] for r in rounds]
        memory = [r[name]["peak_rss_mib"] / r["PEFT"]["peak_rss_mib"] for r in rounds]
        print(f"  {name:32} ex/s {statistics.median(speed):.2f} [{min(speed):.2f}, "
              f"{max(speed):.2f}]   peak RSS {statistics.median(memory):.2f} "
              f"[{min(memory):.2f}, {max(memory):.2f}]")
    matmul = max(r.get("matmul_flops_per_s", 0.0) for r in results.values())
    print(f"jaxprompt step: {useful_flops / 1e9:.1f} GFLOP (XLA cost analysis, per-layer); "
          f"2048^2 float32 matmul: {matmul / 1e9:.1f} GFLOP/s, measured in each jaxprompt "
          "process; step/fwd: step time over forward (loss only) time")


if __name__ == "__main__":
    main()
