"""Prompt transfer (SPoT): train a prompt on each source task, use it to initialise the
target task's prompt (`from_file`), and print target metrics as a source x target matrix
(the diagonal: ordinary class-label init).

    python tools/transfer_matrix.py --model tiny --tasks sst2,user:reviews.csv --steps 300
    python tools/transfer_matrix.py --model /models/t5 --tasks super_glue_rte,glue_mnli \\
        --data_dir /data
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import _common  # noqa: F401  (puts the repository on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tasks", default="sst2", help="comma-separated; 'sst2' is bundled")
    parser.add_argument("--data_dir")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prompt_length", type=int, default=20)
    parser.add_argument("--out", default="transfer_matrix")
    args = parser.parse_args()

    import numpy as np

    from jaxprompt import data
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate
    from jaxprompt.experiments.quickstart import sst2_task

    if args.data_dir:
        data.set_data_dir(args.data_dir)
    config, params = load_pretrained(args.model, dtype=np.float32)
    vocab = data.vocabulary()
    tasks = {
        name: sst2_task() if name == "sst2" else data.get_task(name)
        for name in args.tasks.split(",")
    }
    run = RunConfig(
        steps=args.steps,
        eval_every=max(args.steps // 3, 1),
        test_split="test" if "sst2" in tasks else "validation",
    )
    sources, matrix = {}, {}
    for name, task in tasks.items():
        run_task = dataclasses.replace(
            run, test_split=run.test_split if run.test_split in task.splits else "validation"
        )
        matrix[name, name], _, prompt = tune_and_evaluate(
            config,
            params,
            vocab,
            task,
            args.prompt_length,
            "class_labels",
            run_task,
            os.path.join(args.out, f"source_{name}"),
            progress=False,
        )
        path = os.path.join(args.out, f"source_{name}.npy")
        np.save(path, prompt)
        sources[name] = path
    for source, path in sources.items():
        for target, task in tasks.items():
            if source == target:
                continue  # the diagonal is the source run itself (class-label init)
            run_task = dataclasses.replace(
                run, test_split=run.test_split if run.test_split in task.splits else "validation"
            )
            matrix[source, target], _, _ = tune_and_evaluate(
                config,
                params,
                vocab,
                task,
                args.prompt_length,
                "from_file",
                run_task,
                os.path.join(args.out, f"{source}_to_{target}"),
                prompt_file=path,
                progress=False,
            )
    names = list(tasks)
    print("source \\ target | " + " | ".join(names))
    for source in names:
        print(f"{source} | " + " | ".join(f"{matrix[source, t]:.2f}" for t in names))


if __name__ == "__main__":
    main()
