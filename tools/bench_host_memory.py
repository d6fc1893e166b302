"""The quickstart's prompt-tuning step with glibc's default malloc and with
jaxprompt.host_memory.TUNABLES, side by side: ms/step, page faults and kernel time per step,
peak RSS. Each configuration runs in its own process (GLIBC_TUNABLES is read at start),
interleaved A B A B ...; medians over rounds.

    python tools/bench_host_memory.py --rounds 3 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from _common import median_result  # (also puts the repository on sys.path)


def child(steps: int) -> dict:
    """Times `steps` train steps of the quickstart's shape (after 3 warm-up steps)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxprompt import data, partitioning
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.experiments.quickstart import sst2_task
    from jaxprompt.experiments.tune import RunConfig
    from jaxprompt.prompts.init import PromptConfig, init_prompt
    from jaxprompt.training.optimizers import OptimizerConfig, make_optimizer
    from jaxprompt.training.step import BATCH_KEYS, StepConfig, init_train_state, shard_steps

    run = RunConfig()
    config, params = load_pretrained("tiny", dtype=np.float32)
    vocab = data.vocabulary(None)
    task = sst2_task()
    lengths = data.Lengths(run.inputs_length, run.targets_length)
    batches = data.train_batches(task.name, run.batch_size, lengths, seed=0, vocab=vocab)(0)
    prompt = init_prompt(
        jax.random.key(0),
        params["token_embedder"]["embedding"],
        PromptConfig(length=100, init="sampled_vocab"),
    )
    optimizer = make_optimizer(OptimizerConfig(learning_rate=run.learning_rate))
    state = init_train_state({"prompt": prompt}, optimizer, 0)
    steps_fn = shard_steps(
        config, optimizer, StepConfig(enable_dropout=False), state, partitioning.make_mesh(None)
    )
    batch_list = [
        {k: jnp.asarray(b[k]) for k in BATCH_KEYS}
        for b in (next(batches) for _ in range(steps + 3))
    ]
    for batch in batch_list[:3]:
        state, _ = steps_fn.train_step(state, params, batch)
    jax.block_until_ready(state)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for batch in batch_list[3:]:
        state, _ = steps_fn.train_step(state, params, batch)
    jax.block_until_ready(state)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "ms_per_step": 1000 * seconds / steps,
        "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "kernel_s_per_step": (after.ru_stime - before.ru_stime) / steps,
        "peak_rss_mib": after.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.steps)))
        return

    from jaxprompt.host_memory import TUNABLES

    configurations = {"glibc default": None, "jaxprompt TUNABLES": TUNABLES}
    results = {name: [] for name in configurations}
    for round_index in range(args.rounds):
        for name, tunables in configurations.items():
            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
            env["JAX_PLATFORMS"] = "cpu"
            if tunables:
                env["GLIBC_TUNABLES"] = tunables
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--steps", str(args.steps)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_index + 1} {name}: {results[name][-1]}", flush=True)
    medians = {name: median_result(runs) for name, runs in results.items()}
    base, tuned = medians["glibc default"], medians["jaxprompt TUNABLES"]
    print(
        f"\nquickstart step (P=100, batch 32, 64/4 tokens, float32), medians of "
        f"{args.rounds} rounds x {args.steps} steps:"
    )
    print("| malloc | ms/step | page faults/step | kernel s/step | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in medians.items():
        print(
            f"| {name} | {m['ms_per_step']:.0f} | {m['faults_per_step']:.0f} | "
            f"{m['kernel_s_per_step']:.2f} | {m['peak_rss_mib']:.0f} |"
        )
    ratios = [
        b["ms_per_step"] / t["ms_per_step"]
        for b, t in zip(results["glibc default"], results["jaxprompt TUNABLES"])
    ]
    print(
        f"speed-up {base['ms_per_step'] / tuned['ms_per_step']:.2f}x "
        f"(per round {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
