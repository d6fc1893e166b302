"""Serving throughput and latency: cross-task batching vs one queue per task vs no batching.

For each batching policy it starts `jaxprompt serve` (a subprocess on 127.0.0.1, the
embedded model, a bank of K random prompts), drives it with C concurrent clients sending
one-input requests of random tasks (SST-2 test sentences as inputs), and reports
requests/s, examples/s and p50/p99 latency. The run is bounded: `--requests` per policy
or `--seconds`, whichever comes first; the servers are stopped with SIGTERM.

  python tools/bench_serve.py --tasks 4 --clients 32 --requests 800
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from _common import REPO

POLICIES = ("mixed", "per_task", "single")


def make_bank(directory: str, tasks: int, prompt_length: int, seed: int) -> None:
    import numpy as np
    from jaxprompt.checkpoints import load_pretrained

    config, params = load_pretrained("tiny")
    embedding = np.asarray(params["token_embedder"]["embedding"], np.float32)
    rng = np.random.default_rng(seed)
    labels = {}
    for k in range(tasks):  # prompts of sampled vocabulary rows, as the sampled_vocab init
        rows = rng.integers(3, 5000, prompt_length)
        np.save(os.path.join(directory, f"task{k}.npy"), embedding[rows])
        labels[f"task{k}"] = {"labels": ["negative", "positive"]}
    with open(os.path.join(directory, "bank.json"), "w") as f:
        json.dump(labels, f)


def start_server(bank: str, policy: str, args) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable,
        "-m",
        "jaxprompt.cli.main",
        "serve",
        "--model",
        "tiny",
        "--prompt_bank",
        bank,
        "--port",
        "0",
        "--batching",
        policy,
        "--max_batch",
        str(args.max_batch),
        "--max_wait_ms",
        str(args.max_wait_ms),
        "--inputs_length",
        str(args.inputs_length),
        "--batch_buckets",
        ",".join(str(b) for b in (1, 4, 16, args.max_batch) if b <= args.max_batch),
        "--max_queue",
        "4096",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    for line in process.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return process, found.group(1)
    raise RuntimeError(f"jaxprompt serve --batching {policy} did not start")


async def drive(url: str, sentences: list[str], args) -> dict:
    import aiohttp

    latencies, examples = [], 0
    sent = 0
    deadline = time.monotonic() + args.seconds
    rng = random.Random(args.seed)

    async def client(session):
        nonlocal sent, examples
        while sent < args.requests and time.monotonic() < deadline:
            sent += 1
            body = {
                "task": f"task{rng.randrange(args.tasks)}",
                "inputs": [rng.choice(sentences) for _ in range(args.inputs_per_request)],
            }
            start = time.perf_counter()
            async with session.post(url + "/v1/predict", json=body) as response:
                answer = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {answer}")
            latencies.append(time.perf_counter() - start)
            examples += len(answer["predictions"])

    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(2):  # warm the connections and the server's first batches
            await session.post(url + "/v1/predict", json={"task": "task0", "inputs": ["ok"]})
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(args.clients)))
        seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "examples_per_s": examples / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=4, help="K tasks in the bank and traffic")
    parser.add_argument("--clients", type=int, default=32, help="C concurrent clients")
    parser.add_argument("--requests", type=int, default=800, help="requests per policy")
    parser.add_argument("--seconds", type=float, default=90, help="time limit per policy")
    parser.add_argument("--inputs_per_request", type=int, default=1)
    parser.add_argument("--prompt_length", type=int, default=20)
    parser.add_argument("--max_batch", type=int, default=32)
    parser.add_argument("--max_wait_ms", type=float, default=10.0)
    parser.add_argument("--inputs_length", type=int, default=128)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sentences = [
        line.split("\t")[0]
        for line in open(os.path.join(REPO, "jaxprompt", "assets", "sst2", "test.tsv"))
        .read()
        .splitlines()[1:]
    ]
    results = {}
    with tempfile.TemporaryDirectory() as bank:
        make_bank(bank, args.tasks, args.prompt_length, args.seed)
        for policy in args.policies.split(","):
            process, url = start_server(bank, policy, args)
            try:
                results[policy] = asyncio.run(drive(url, sentences, args))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
            r = results[policy]
            print(
                f"{policy:9s} {r['requests']:5d} requests in {r['seconds']:6.1f} s: "
                f"{r['requests_per_s']:7.1f} req/s {r['examples_per_s']:7.1f} ex/s  "
                f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms",
                flush=True,
            )
    print(
        f"\nK={args.tasks} tasks, C={args.clients} clients, {args.inputs_per_request} "
        f"input(s)/request, max_batch {args.max_batch}, max_wait {args.max_wait_ms} ms, "
        f"inputs {args.inputs_length} tokens, prompts {args.prompt_length}, model: embedded"
    )
    if "mixed" in results:
        mixed = results["mixed"]
        for other in ("per_task", "single"):
            if other in results:
                o = results[other]
                print(
                    f"mixed vs {other}: throughput x{mixed['examples_per_s'] / o['examples_per_s']:.2f}, "
                    f"p99 {mixed['p99_ms']:.0f} vs {o['p99_ms']:.0f} ms"
                )


if __name__ == "__main__":
    main()
