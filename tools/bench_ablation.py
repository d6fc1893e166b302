"""The paper's Figure 3 on a real pretrained model: prompt length x initialisation on Gemma 3
270M (the gemma extra) and the quickstart's SST-2 split, against in-context baselines.

Every cell is prompt tuning as `jaxprompt quickstart --model gemma-3-270m` runs it (the
same template, batch 16, Adafactor lr 0.1, 200 validation sentences, its dtypes; the run
built by `jaxprompt train`'s own code: jaxprompt.experiments.tune), with the same step
budget for every cell; its figure is the test accuracy (872 sentences) of the prompt it selected on
validation. Inits: uniform (U[-0.5, 0.5], the paper's "random uniform"), sampled_vocab,
class_labels, text (INIT_TEXT). Baselines, on the same model and split: the majority class
and the frozen model with a hard prompt: zero-shot (the template alone) and k-shot (k
training examples, classes alternating, before the input).

    python tools/bench_ablation.py                     # the grid, seed 0, then baselines
    python tools/bench_ablation.py --cells 20:class_labels --seeds 3
    python tools/bench_ablation.py --report            # table + RESULTS/ablation.png

Each cell is a resumable `jaxprompt train` directory RUNS/P<P>-<init>/seed<k>/ (--runs,
outside the repository) and, once finished, RESULTS/P<P>-<init>-seed<k>.json (--results,
committed); a rerun skips finished cells and resumes the rest, so the grid fills across
sessions. `--time_limit` stops starting new cells after that many seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

from _common import write_json  # (also puts the repository on sys.path)

LENGTHS = (1, 5, 20, 100)
INITS = ("uniform", "sampled_vocab", "class_labels", "text")
INIT_TEXT = "Is the sentiment of this movie review negative or positive?"
SHOTS = (4, 16)


@functools.lru_cache(maxsize=1)
def _model(model: str, dtype: str):
    """(config, params, vocab, task, scoring) of the model, loaded once per process: trained
    and scored in the quickstart's dtypes (`run_dtypes`)."""
    from jaxprompt import data
    from jaxprompt.checkpoints import model_vocabulary
    from jaxprompt.experiments.quickstart import DECODER_RECIPE, load_model, sst2_task

    config, params, scoring = load_model(model, dtype)
    vocab = data.vocabulary(model_vocabulary(model))
    recipe = DECODER_RECIPE
    task = sst2_task(recipe.validation_rows, None, recipe.input_template, "quickstart_sst2_lm")
    return config, params, vocab, task, scoring


def run_cell(args, length: int, init: str, seed: int) -> dict:
    from jaxprompt.experiments.quickstart import DECODER_RECIPE
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate

    config, params, vocab, task, scoring = _model(args.model, args.dtype)
    recipe = DECODER_RECIPE
    run = RunConfig(
        steps=args.steps,
        batch_size=recipe.batch_size,
        learning_rate=args.learning_rate,
        eval_every=args.eval_every,
        inputs_length=recipe.inputs_length,
        seed=seed,
        prompt_text=INIT_TEXT if init == "text" else None,
    )
    output_dir = os.path.join(args.runs, f"P{length}-{init}", f"seed{seed}")
    begin = time.time()
    test, result, _ = tune_and_evaluate(
        config, params, vocab, task, length, init, run, output_dir, model_path=args.model,
        progress=False, scoring=scoring,
    )  # fmt: skip
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    curve = [(r["step"], r["accuracy"]) for r in rows if r["split"] == "validation"]
    return {
        "prompt_length": length,
        "init": init,
        "seed": seed,
        "steps": args.steps,
        "batch_size": recipe.batch_size,
        "learning_rate": args.learning_rate,
        "dtype": config.dtype,
        "score_dtype": scoring[0].dtype,
        "validation_curve": curve,
        "best_step": result.best_step,
        "best_validation": result.best_metric,
        "test_at_best": test,
        "seconds": time.time() - begin,  # this process's share (a resumed run: the rest)
    }


def run_baselines(args) -> dict:
    import numpy as np

    from jaxprompt import data, evaluation
    from jaxprompt.experiments.quickstart import DECODER_RECIPE, few_shot_text, hard_prompt

    _, _, vocab, task, (config, params) = _model(args.model, args.dtype)
    lengths = data.Lengths(DECODER_RECIPE.inputs_length, 4)
    test = task.examples("test")
    train_labels = [e["label"] for e in task.examples("train")]
    majority = int(np.bincount(train_labels).argmax())
    accuracy = lambda trainable=None, **kw: evaluation.evaluate(
        config, params, trainable, task, vocab, split="test", lengths=lengths, **kw
    ).metrics["accuracy"]
    out = {
        "majority": 100 * float(np.mean([e["label"] == majority for e in test])),
        "zero_shot": accuracy(),
        "dtype": config.dtype,
    }
    for shots in SHOTS:
        demos = hard_prompt(config, params, vocab, few_shot_text(task, shots))
        out[f"{shots}_shot"] = accuracy(demos, prompt_mode="prefix_after_bos")
    return out


def _cells(spec: str) -> list[tuple[int, str]]:
    if spec == "all":
        return [(length, init) for init in INITS for length in LENGTHS]
    cells = []
    for item in spec.split(","):
        length, init = item.split(":")
        if init not in INITS:
            raise SystemExit(f"--cells {item}: init must be one of {', '.join(INITS)}")
        cells.append((int(length), init))
    return cells


def _finished(results: str) -> list[dict]:
    out = []
    for name in sorted(os.listdir(results)) if os.path.isdir(results) else []:
        if name.startswith("P") and name.endswith(".json"):
            with open(os.path.join(results, name)) as f:
                out.append(json.load(f))
    return out


def _tests(cells: list[dict], length: int, init: str) -> list[float]:
    """The test accuracies of one cell of the grid, one per finished seed."""
    return [c["test_at_best"] for c in cells if (c["prompt_length"], c["init"]) == (length, init)]


def report(results: str) -> None:
    cells = _finished(results)
    baselines_path = os.path.join(results, "baselines.json")
    baselines = json.load(open(baselines_path)) if os.path.exists(baselines_path) else {}
    if not cells:
        print("no finished cells yet")
        return
    steps = sorted({c["steps"] for c in cells})
    print(f"SST-2 test accuracy (872 sentences), Gemma 3 270M, {steps} steps of 16; mean +- sd")
    print("over seeds where there are several\n")
    print("| P | " + " | ".join(INITS) + " |")
    print("|---|" + "---|" * len(INITS))
    for length in LENGTHS:
        row = []
        for init in INITS:
            tests = _tests(cells, length, init)
            if not tests:
                row.append("-")
            elif len(tests) == 1:
                row.append(f"{tests[0]:.2f}")
            else:
                row.append(
                    f"{statistics.mean(tests):.2f} +- {statistics.stdev(tests):.2f} ({len(tests)})"
                )
        print(f"| {length} | " + " | ".join(row) + " |")
    for name in ("majority", "zero_shot", *(f"{k}_shot" for k in SHOTS)):
        if name in baselines:
            print(f"{name}: {baselines[name]:.2f}")
    _plot(cells, baselines, os.path.join(results, "ablation.png"))


def _plot(cells: list[dict], baselines: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for init, marker in zip(INITS, "osD^"):
        points = []
        for length in LENGTHS:
            tests = _tests(cells, length, init)
            if tests:
                points.append((length, statistics.mean(tests)))
        if points:
            ax.plot(*zip(*points), marker=marker, label=init)
    styles = {"majority": ":", "zero_shot": "--", "4_shot": "-.", "16_shot": (0, (1, 4))}
    for name, style in styles.items():
        if name in baselines:
            ax.axhline(baselines[name], color="gray", ls=style, lw=1, label=name.replace("_", "-"))
    ax.set_xscale("log")
    ax.set_xticks(LENGTHS, [str(n) for n in LENGTHS])
    ax.set(
        xlabel="prompt length (tokens)",
        ylabel="SST-2 test accuracy (%)",
        title="Prompt tuning Gemma 3 270M: length x initialisation",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gemma-3-270m", help="a named model or a .gguf file")
    p.add_argument("--runs", default=os.path.join("..", "jaxprompt_runs", "ablation"))
    p.add_argument("--results", default=os.path.join("bench_results", "ablation"))
    p.add_argument("--cells", default="all", help="all, or P:init,... e.g. 20:class_labels")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--first_seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--eval_every", type=int, default=50)
    p.add_argument("--learning_rate", type=float, default=0.1)
    p.add_argument("--dtype", default="auto", help="float32, bfloat16 or auto (the quickstart's)")
    p.add_argument("--no_baselines", action="store_true")
    p.add_argument(
        "--time_limit", type=float, default=None, help="seconds; then stop starting cells"
    )
    p.add_argument("--report", action="store_true", help="only print the table and plot")
    args = p.parse_args()
    start, stopped = time.time(), False
    if not args.report:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for length, init in _cells(args.cells):
                done = os.path.join(args.results, f"P{length}-{init}-seed{seed}.json")
                if os.path.exists(done):
                    continue
                if args.time_limit and time.time() - start > args.time_limit:
                    stopped = True
                    continue
                result = run_cell(args, length, init, seed)
                write_json(done, result)
                print(
                    f"P={length} {init} seed {seed}: best validation {result['best_validation']:.2f}"
                    f" at step {result['best_step']}, test {result['test_at_best']:.2f} "
                    f"({result['seconds']:.0f} s)",
                    flush=True,
                )
        baselines = os.path.join(args.results, "baselines.json")
        if stopped:
            print("time limit reached; rerun to continue", flush=True)
        elif not args.no_baselines and not os.path.exists(baselines):
            write_json(baselines, run_baselines(args))
    report(args.results)


if __name__ == "__main__":
    main()
