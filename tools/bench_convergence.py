"""Convergence over seeds on the embedded model and the quickstart's SST-2 files.

Methods (the quickstart's recipe: P=100, class-label init, Adafactor lr 0.3, batch 32, 400
steps, 64/4 tokens; validation every 50 steps on the 500 validation sentences):
  plain        prompt tuning as the quickstart runs it
  residual     the same, with the residual prompt encoder (train.prompt_encoder)
  plain_lr2x   plain at lr 0.6
  plain_p10    plain with a 10x shorter prompt (P=10)
  residual_p10 residual with P=10
  residual_no_norm  probe: residual without the MLP's layer norm (at init the layer norm's
               output is as large as this model's embedding rows)
  residual_scaled   probe: residual with Adafactor's relative step size
               (multiply_by_parameter_scale): lr 0.3 is an absolute step for every weight
               otherwise, huge for the MLP's weights (RMS ~0.04)
  plain_scaled probe: the same optimizer setting without the encoder
  residual_lr0.03  probe: residual at a tenth of the learning rate
  residual_zero_init  residual whose layer-norm scale starts at 0: the branch starts at zero,
               the effective prompt at the class-label init

    python tools/bench_convergence.py --seeds 5
    python tools/bench_convergence.py --report

Every run is a resumable `jaxprompt train` directory RUNS/<method>/seed<k>/ (--runs,
outside the repository), and RESULTS/<method>-seed<k>.json (--results, committed) records it
once finished (test accuracy of the prompt the run
selected on validation); a rerun skips finished runs and resumes the rest, so a killed
session loses at most one run's progress since its last checkpoint. `--report` prints, per
method: steps to reach the plain recipe's final validation accuracy (median over seeds),
validation and test accuracy mean +- sd, seconds per step; and draws RESULTS/convergence.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from _common import write_json  # (also puts the repository on sys.path)

METHODS = {  # name: RunConfig fields beyond the quickstart's (prompt_length: P)
    "plain": {},
    "residual": {"prompt_encoder": "residual_mlp"},
    "plain_lr2x": {"learning_rate": 0.6},
    "plain_p10": {"prompt_length": 10},
    "residual_p10": {"prompt_length": 10, "prompt_encoder": "residual_mlp"},
    "residual_no_norm": {"prompt_encoder": "residual_mlp", "prompt_encoder_layer_norm": False},
    "residual_scaled": {"prompt_encoder": "residual_mlp", "multiply_by_parameter_scale": True},
    "plain_scaled": {"multiply_by_parameter_scale": True},
    "residual_lr0.03": {"prompt_encoder": "residual_mlp", "learning_rate": 0.03},
    "residual_zero_init": {"prompt_encoder": "residual_mlp", "prompt_encoder_norm_scale_init": 0.0},
}


def run_one(runs: str, method: str, seed: int, steps: int, eval_every: int, tag: str = "") -> dict:
    import numpy as np

    from jaxprompt import data
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.experiments.quickstart import TINY_MODEL, sst2_task
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate

    overrides = dict(METHODS[method])
    length = overrides.pop("prompt_length", 100)
    config, params = load_pretrained(TINY_MODEL, dtype=np.float32)
    vocab = data.vocabulary(os.path.join(TINY_MODEL, "spiece.model"))
    run = RunConfig(steps=steps, eval_every=eval_every, seed=seed, **overrides)
    output_dir = os.path.join(runs, method + tag, f"seed{seed}")
    test, result, _ = tune_and_evaluate(
        config,
        params,
        vocab,
        sst2_task(),
        length,
        "class_labels",
        run,
        output_dir,
        model_path=TINY_MODEL,
        progress=False,
    )
    rows = [json.loads(line) for line in open(os.path.join(output_dir, "metrics.jsonl"))]
    curve = [(r["step"], r["accuracy"]) for r in rows if r["split"] == "validation"]
    # Seconds per step from the logged windows that hold neither the compile (the first)
    # nor an evaluation: a window starts at the log before it, so one ending at a multiple
    # of eval_every began after the previous evaluation had finished.
    train = [
        r
        for r in rows
        if r["split"] == "train" and r["step"] % eval_every == 0 and r["step"] > eval_every
    ]
    seconds = statistics.median(1 / r["steps_per_second"] for r in train) if train else None
    return {
        "method": method + tag,
        "seed": seed,
        "steps": steps,
        "validation_curve": curve,
        "best_step": result.best_step,
        "best_validation": result.best_metric,
        "test_at_best": test,
        "seconds_per_step": seconds,
    }


def _finished(out: str) -> list[dict]:
    results = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if name.endswith(".json") and "-seed" in name:
            with open(os.path.join(out, name)) as f:
                results.append(json.load(f))
    return results


def _mean_sd(values) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {sd:.2f}"


def report(out: str) -> None:
    results = _finished(out)
    plain = [r for r in results if r["method"] == "plain"]
    if not plain:
        print("no finished plain runs yet")
        return
    target = statistics.mean(r["validation_curve"][-1][1] for r in plain)
    print(
        f"target: the plain recipe's final ({plain[0]['steps']}-step) validation accuracy, "
        f"mean over {len(plain)} seeds: {target:.2f}\n"
    )
    print("| method | seeds | steps to target (median) | best validation | test at best | s/step |")
    print("|---|---|---|---|---|---|")
    present = {r["method"] for r in results}
    for method in [m for m in METHODS if m in present] + sorted(present - set(METHODS)):
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        reached = [
            next((s for s, a in r["validation_curve"] if a >= target), float("inf")) for r in runs
        ]
        median = statistics.median(reached)
        seconds = [r["seconds_per_step"] for r in runs if r["seconds_per_step"]]
        steps = "not reached" if median == float("inf") else str(int(median))
        reach = sum(x != float("inf") for x in reached)
        per_step = f"{statistics.median(seconds):.2f}" if seconds else "-"
        print(
            f"| {method} | {len(runs)} | {steps} ({reach}/{len(runs)} reach it) | "
            f"{_mean_sd([r['best_validation'] for r in runs])} | "
            f"{_mean_sd([r['test_at_best'] for r in runs])} | {per_step} |"
        )
    _plot(results, target, os.path.join(out, "convergence.png"))


def _plot(results, target: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(
        zip(
            METHODS,
            [
                "tab:blue",
                "tab:red",
                "tab:green",
                "tab:gray",
                "tab:orange",
                "tab:purple",
                "tab:brown",
                "tab:cyan",
            ],
        )
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        steps, accuracy = zip(*r["validation_curve"])
        ax.plot(
            steps,
            accuracy,
            color=colors.get(r["method"], "black"),
            alpha=0.7,
            lw=1.2,
            label=r["method"]
            if r["seed"] == min(x["seed"] for x in results if x["method"] == r["method"])
            else None,
        )
    ax.axhline(target, color="black", ls=":", lw=1, label="plain's final validation (mean)")
    ax.set(
        xlabel="step",
        ylabel="SST-2 validation accuracy (%)",
        title="Prompt tuning vs residual prompt tuning, embedded T5, one line per seed",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runs",
        default=os.path.join("..", "jaxprompt_runs", "convergence"),
        help="training directories (resumable; outside the repository)",
    )
    p.add_argument(
        "--results",
        default=os.path.join("bench_results", "convergence"),
        help="one JSON per finished run, the plot",
    )
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first_seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval_every", type=int, default=50)
    p.add_argument("--tag", default="", help="a suffix for probe runs of other --steps")
    p.add_argument("--report", action="store_true", help="only print the table and plot")
    args = p.parse_args()
    if not args.report:
        for seed in range(args.first_seed, args.seeds):
            for method in args.methods.split(","):
                done = os.path.join(args.results, f"{method}{args.tag}-seed{seed}.json")
                if os.path.exists(done):
                    continue
                result = run_one(args.runs, method, seed, args.steps, args.eval_every, args.tag)
                write_json(done, result)
                print(
                    f"{method} seed {seed}: best validation {result['best_validation']:.2f} "
                    f"at step {result['best_step']}, test {result['test_at_best']:.2f}",
                    flush=True,
                )
    report(args.results)


if __name__ == "__main__":
    main()
