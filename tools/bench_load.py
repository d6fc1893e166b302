"""Times `jaxprompt.load_pretrained` on a HF directory and reports peak RSS.

    python tools/make_random_checkpoint.py --preset t5_1_1_base --out /tmp/t5_base
    python tools/bench_load.py /tmp/t5_base

Run in a fresh process so the peak RSS is that of loading alone.
"""

from __future__ import annotations

import argparse
import resource
import time

import _common  # noqa: F401  (puts the repository on sys.path)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    args = parser.parse_args()
    import jax
    import numpy as np

    import jaxprompt

    jax.numpy.zeros(1).block_until_ready()  # Start the backend before measuring.
    baseline = rss_mib()
    start = time.perf_counter()
    config, params = jaxprompt.load_pretrained(args.path)
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nbytes = sum(x.nbytes for x in jax.tree.leaves(params))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    print(f"loaded {count:,} params ({nbytes / 2**20:.0f} MiB) from {args.path}")
    print(f"load time: {seconds:.2f} s")
    print(
        f"RSS before load: {baseline:.0f} MiB; peak RSS: {peak:.0f} MiB; "
        f"peak - before = {peak - baseline:.0f} MiB = {(peak - baseline) * 2**20 / nbytes:.2f}x "
        "the weights"
    )


if __name__ == "__main__":
    main()
