"""Matmul rates of this CPU: torch and XLA:CPU, float32 and bfloat16, with the XLA flags and
dot formulations that could reach the AMX units (docs/measurements.md, "XLA:CPU on AMX").

    python tools/bench_matmul.py                 # 2048^2, 10 repetitions, each row its own process
    python tools/bench_matmul.py --hlo           # also print the compiled HLO of the bf16 dots

Rows: torch float32 / bfloat16 (oneDNN); jax float32; jax bfloat16 x bfloat16 -> bfloat16
(plain `a @ b`), also under each XLA flag below; jax bfloat16 x bfloat16 -> float32
(`preferred_element_type`, what `jaxprompt.models.dots.einsum` asks for); jax float32 with
bfloat16 passes (Precision.DEFAULT, the BF16_BF16_F32 dot algorithm).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import median_seconds

FLAGS = (
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_custom_call=true",
    "--xla_cpu_experimental_onednn_fusion_type=dot",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_fusion_type=dot",
    "--xla_cpu_experimental_ynn_fusion_type=dot",
    "--xla_cpu_max_isa=AMX",
)


def one_rate(kind: str, size: int, repeats: int, threads: int, hlo: bool) -> dict:
    """GFLOP/s of one size^2 matmul of `kind`, in this process."""
    if kind.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        a = torch.ones((size, size), dtype=getattr(torch, kind.split()[1]))
        return {"gflops": 2 * size**3 / median_seconds(lambda: a @ a, repeats) / 1e9}
    import jax
    import jax.numpy as jnp

    lax = jax.lax
    f32 = jnp.float32
    products = {
        "jax float32": (f32, lambda a: a @ a),
        "jax bfloat16 -> bfloat16": (jnp.bfloat16, lambda a: a @ a),
        "jax bfloat16 -> float32": (
            jnp.bfloat16,
            lambda a: jnp.dot(a, a, preferred_element_type=f32),
        ),
        "jax float32, Precision.DEFAULT": (
            f32,
            lambda a: jnp.dot(a, a, precision=lax.Precision.DEFAULT),
        ),
        "jax float32, BF16_BF16_F32": (
            f32,
            lambda a: lax.dot(a, a, precision=lax.DotAlgorithmPreset.BF16_BF16_F32),
        ),
    }
    dtype, product = products[kind]
    a = jnp.ones((size, size), dtype)
    compiled = jax.jit(product).lower(a).compile()
    text = compiled.as_text()
    out = {
        "gflops": 2
        * size**3
        / median_seconds(lambda: compiled(a).block_until_ready(), repeats)
        / 1e9,
        "converts": text.count(" convert("),
        "ynn_fusion": "__ynn_fusion" in text,
    }
    if hlo:
        out["hlo"] = text[text.index("ENTRY") :]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--hlo", action="store_true", help="print the bf16 dots' compiled HLO")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # (internal) one row
    args = parser.parse_args()
    if args.only:
        print(
            "RESULT "
            + json.dumps(one_rate(args.only, args.size, args.repeats, args.threads, args.hlo))
        )
        return
    rows = [
        ("torch float32", ""),
        ("torch bfloat16", ""),
        ("jax float32", ""),
        ("jax bfloat16 -> bfloat16", ""),
    ]
    rows += [("jax bfloat16 -> bfloat16", flag) for flag in FLAGS]
    rows += [
        ("jax bfloat16 -> float32", ""),
        ("jax float32, Precision.DEFAULT", ""),
        ("jax float32, BF16_BF16_F32", ""),
    ]
    print(
        f"{args.size}^2 matmul, {args.threads} threads, median of {args.repeats}, each row in "
        "its own process"
    )
    for kind, flag in rows:
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flag, TF_CPP_MIN_LOG_LEVEL="3")
        command = [
            sys.executable,
            __file__,
            "--only",
            kind,
            f"--size={args.size}",
            f"--repeats={args.repeats}",
            f"--threads={args.threads}",
        ]
        done = subprocess.run(
            command + (["--hlo"] if args.hlo else []), env=env, capture_output=True, text=True
        )
        line = [row for row in done.stdout.splitlines() if row.startswith("RESULT ")]
        if done.returncode or not line:
            print(f"{kind} {flag}: failed: {done.stderr.strip()[-300:]}")
            continue
        r = json.loads(line[0][len("RESULT ") :])
        extra = (
            ""
            if "converts" not in r
            else f"   converts {r['converts']}, YNN fusion {'yes' if r['ynn_fusion'] else 'no'}"
        )
        print(f"  {kind + (' ' + flag if flag else ''):72}{r['gflops']:8.0f} GFLOP/s{extra}")
        if args.hlo and "hlo" in r and "bfloat16" in kind and not flag:
            print(r["hlo"])


if __name__ == "__main__":
    main()
