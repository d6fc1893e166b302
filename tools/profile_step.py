"""Where a prompt-tuning train step's time goes on this machine: XLA:CPU's thunks, grouped.

    python tools/profile_step.py --preset tiny --batch 32 --inputs 64 --targets 4 --dtype bfloat16

Runs the step `jaxprompt train` runs (`training.step.shard_steps`, per-layer, no remat) on
a random model of the shape, traces --steps steps with `jax.profiler`, and sums the thunks'
time per (forward | backward, kind of thunk, operation) from the HLO's op_name metadata.
Thunks of the two threads overlap, so the sum can exceed the wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile
import time

from _common import add_shape_flags, random_prompt_step


def thunk_groups(trace_dir: str, hlo: str, steps: int) -> collections.Counter:
    """ms per step for each (phase, thunk kind, operation) in the trace."""
    import jax

    meta = {}
    for line in hlo.splitlines():
        found = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", line)
        if found:
            meta[found.group(1)] = found.group(2)
    path = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
    groups = collections.Counter()
    for plane in jax.profiler.ProfileData.from_file(path).planes:
        for line in plane.lines:
            for event in line.events:
                op = meta.get(event.name)
                if op is None:
                    continue
                phase = "backward" if "transpose(" in op else "forward"
                parts = op.split("/")
                what = parts[-2] if op.endswith("dot_general") else parts[-1]
                groups[(phase, event.name.split(".")[0], what)] += event.duration_ns / 1e6 / steps
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_flags(parser, batch=8)
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="compute and frozen-weight dtype",
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import jax

    config, steps, state, frozen, batch = random_prompt_step(args, args.dtype)
    compiled = steps.train_step.lower(state, frozen, batch).compile()
    for _ in range(2):
        state, _ = compiled(state, frozen, batch)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(args.steps):
                state, _ = compiled(state, frozen, batch)
                jax.block_until_ready(state)
        wall = (time.perf_counter() - start) / args.steps * 1e3
        groups = thunk_groups(trace_dir, compiled.as_text(), args.steps)
    print(
        f"{args.preset}, P={args.prompt_length}, batch {args.batch}, {args.inputs}/"
        f"{args.targets} tokens, {args.dtype}: {wall:.0f} ms/step traced; thunks "
        f"{sum(groups.values()):.0f} ms/step in all (two threads overlap)"
    )
    for (phase, kind, what), ms in groups.most_common(args.top):
        print(f"  {ms:7.1f} ms  {phase:9} {kind:28} {what}")


if __name__ == "__main__":
    main()
