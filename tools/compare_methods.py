"""Compares methods on one frozen model and task: zero-shot hard prompt, few-shot, prompt
tuning (P in {1, 5, 20, 100} x three inits), a 5-prompt ensemble, deep prompts (prefix tuning:
keys and values in every encoder layer, no input prompt), full fine-tuning of the same model
(the upper reference, T5's fine-tuning recipe, its own step count) and a bag-of-words
logistic regression (the simple baseline). Writes a markdown table and a PNG.

    python tools/compare_methods.py                      # embedded model, bundled SST-2
    python tools/compare_methods.py --steps 300 --lengths 1,20 --inits class_labels
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import _common  # noqa: F401  (puts the repository on sys.path)


def full_fine_tune(config, params, task, vocab, lengths, run, learning_rate, dropout):
    """All weights trained: the reference prompt tuning is compared with. AdamW (warmup 50
    steps, then constant), global-norm clipping 1.0, weight decay 0.01, dropout (T5's
    fine-tuning recipe); like prompt tuning, the weights of the best validation evaluation
    are the ones tested. The step and loop are jaxprompt.training.weights' (pretraining's)."""
    import jax
    import optax

    from jaxprompt import data, evaluation
    from jaxprompt.models.t5 import T5
    from jaxprompt.training.weights import (
        WeightsLoopConfig,
        seq2seq_loss,
        train_weights,
        weights_step,
    )

    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(optax.warmup_constant_schedule(0.0, learning_rate, 50), weight_decay=0.01),
    )
    model = T5(dataclasses.replace(config, dropout_rate=dropout))
    step = weights_step(seq2seq_loss(model), optimizer)
    metric = task.metrics[0]
    best = {"validation": -1.0, "test": None}

    def evaluate(done, params):
        value = evaluation.evaluate(
            config, params, None, task, vocab, split=run.eval_split, lengths=lengths
        ).metrics[metric]
        improved = value > best["validation"]
        print(
            f"full fine-tuning step {done}: validation {metric} {value:.2f}"
            + (" (best)" if improved else ""),
            flush=True,
        )
        if improved:
            best["validation"] = value
            best["test"] = evaluation.evaluate(
                config, params, None, task, vocab, split=run.test_split, lengths=lengths
            ).metrics[metric]
        return {metric: value}

    batches = data.train_batches(task.name, run.batch_size, lengths, seed=run.seed, vocab=vocab)
    params = jax.tree.map(lambda x: x.copy(), params)
    train_weights(
        step,
        params,
        optimizer.init(params),
        batches,
        WeightsLoopConfig(
            steps=run.steps, evaluate_every=run.eval_every, progress=False, name="full fine-tuning"
        ),
        rng=jax.random.PRNGKey(run.seed) if dropout else None,
        evaluate=evaluate,
    )
    return best["test"]


def bag_of_words(task) -> float:
    """TF-IDF of word unigrams and bigrams + logistic regression on the same training rows:
    the simple baseline any method here should beat (scikit-learn)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = task.examples("train"), task.examples("test")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    features = vectorizer.fit_transform([e["inputs"] for e in train])
    classifier = LogisticRegression(max_iter=2000, C=4.0).fit(features, [e["label"] for e in train])
    predicted = classifier.predict(vectorizer.transform([e["inputs"] for e in test]))
    return 100 * float(np.mean(predicted == np.asarray([e["label"] for e in test])))


def main() -> None:
    from jaxprompt.host_memory import reexec_with_malloc_tunables

    reexec_with_malloc_tunables()  # huge pages for XLA:CPU's step memory (see there)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--task", default="sst2", help="'sst2' (bundled) or a task name")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lengths", default="1,5,20,100")
    parser.add_argument("--inits", default="class_labels,sampled_vocab,uniform")
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument(
        "--fine_tune_learning_rate",
        type=float,
        default=1e-4,
        help="AdamW learning rate of the full fine-tuning row",
    )
    parser.add_argument("--fine_tune_steps", type=int, default=1200)
    parser.add_argument("--fine_tune_dropout", type=float, default=0.1)
    parser.add_argument(
        "--deep_length", type=int, default=20, help="deep prompt length per layer (0: skip the row)"
    )
    parser.add_argument("--out", default="compare_methods")
    args = parser.parse_args()

    import jax.numpy as jnp
    import numpy as np

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate
    from jaxprompt.prompts.hard import with_hard_prompt
    from jaxprompt.experiments.quickstart import HARD_PROMPT, sst2_task

    start = time.time()
    config, params = load_pretrained(args.model, dtype=np.float32)
    vocab = data.vocabulary(
        os.path.join(args.model, "spiece.model") if os.path.isdir(args.model) else None
    )
    task = sst2_task() if args.task == "sst2" else data.get_task(args.task)
    run = RunConfig(steps=args.steps, eval_every=max(args.steps // 4, 1))
    lengths = data.Lengths(run.inputs_length, run.targets_length)
    metric = task.metrics[0]
    rows = []

    def evaluate(name, prompt=None, t=task, ensemble=None):
        value = evaluation.evaluate(
            config, params, prompt, t, vocab, split="test", lengths=lengths, ensemble=ensemble
        ).metrics[metric]
        rows.append((name, value))
        print(f"{value:7.2f}  {name}", flush=True)

    labels = np.asarray([e["label"] for e in task.examples("test")])
    majority = int(np.bincount([e["label"] for e in task.examples("train")]).argmax())
    rows.append(("majority class", 100 * float(np.mean(labels == majority))))
    rows.append(
        ("bag of words: TF-IDF 1-2 grams + logistic regression (no T5)", bag_of_words(task))
    )
    for name, value in rows:
        print(f"{value:7.2f}  {name}", flush=True)
    evaluate("zero-shot hard prompt", t=with_hard_prompt(task, HARD_PROMPT))
    evaluate(f"{args.shots}-shot hard prompt", t=with_hard_prompt(task, HARD_PROMPT, args.shots))
    prompts_20 = []
    for length in [int(x) for x in args.lengths.split(",")]:
        for init in args.inits.split(","):
            value, _, prompt = tune_and_evaluate(
                config,
                params,
                vocab,
                task,
                length,
                init,
                run,
                os.path.join(args.out, f"p{length}_{init}"),
                progress=False,
            )
            rows.append((f"prompt tuning P={length}, {init} init", value))
            print(f"{value:7.2f}  {rows[-1][0]}", flush=True)
            if length == 20:
                prompts_20.append(prompt)
    while 0 < len(prompts_20) < 5:  # Seeds for a 5-prompt ensemble of P=20 class-label prompts.
        seed = len(prompts_20)
        _, _, prompt = tune_and_evaluate(
            config,
            params,
            vocab,
            task,
            20,
            "class_labels",
            dataclasses.replace(run, seed=seed),
            os.path.join(args.out, f"ensemble_{seed}"),
            progress=False,
        )
        prompts_20.append(prompt)
    if prompts_20:
        evaluate("5-prompt ensemble (P=20, vote)", jnp.stack(prompts_20[:5]), ensemble="vote")
    if args.deep_length:
        value, _, _ = tune_and_evaluate(
            config,
            params,
            vocab,
            task,
            0,
            "class_labels",
            run,
            os.path.join(args.out, f"deep{args.deep_length}"),
            progress=False,
            deep_prompt_length=args.deep_length,
        )
        rows.append((f"deep prompts (prefix tuning), P={args.deep_length} per layer", value))
        print(f"{value:7.2f}  {rows[-1][0]}", flush=True)
    ft_run = dataclasses.replace(
        run, steps=args.fine_tune_steps, eval_every=max(args.fine_tune_steps // 8, 1)
    )
    value = full_fine_tune(
        config,
        params,
        task,
        vocab,
        lengths,
        ft_run,
        args.fine_tune_learning_rate,
        args.fine_tune_dropout,
    )
    rows.append(
        (
            f"full fine-tuning ({args.fine_tune_steps} steps, AdamW "
            f"{args.fine_tune_learning_rate:g}, dropout {args.fine_tune_dropout:g})",
            value,
        )
    )
    print(f"{value:7.2f}  {rows[-1][0]}")

    os.makedirs(args.out, exist_ok=True)
    table = [f"| method | test {metric} |", "| --- | --- |"] + [
        f"| {name} | {v:.2f} |" for name, v in rows
    ]
    with open(os.path.join(args.out, "comparison.md"), "w") as f:
        f.write(
            f"Model {args.model}, task {task.name}, {args.steps} steps per trained method, "
            f"{(time.time() - start) / 60:.0f} min.\n\n" + "\n".join(table) + "\n"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1))
    ax.barh([n for n, _ in rows][::-1], [v for _, v in rows][::-1])
    ax.set_xlabel(f"test {metric}")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "comparison.png"), dpi=90)
    print("\n".join(table))


if __name__ == "__main__":
    main()
