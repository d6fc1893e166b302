"""Evaluation on a 2-process CPU "pod" (python -m tests.multihost_eval ...) and its reference.

  python -m tests.multihost_eval PROCESS_ID NUM_PROCESSES PORT DIRECTORY
Each process has 4 CPU devices; the mesh is (data 2, model 4): each process holds one half of
every global batch of 8 and a quarter of the frozen model's vocab/heads/mlp on each device.
`suite` runs rank classification, greedy decoding, a prompt ensemble and a mixed-task prompt
bank on 13 examples (not a multiple of the batch) and returns every prediction and metric.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

SENTENCES = [
    "a gripping , beautifully acted film",
    "dull and far too long",
    "it was fine",
    "the plot never comes together",
    "a joy from start to finish",
    "painfully slow",
    "one of the best films of the year",
    "i wanted my money back",
    "warm and funny",
    "a mess",
    "smart , sharp and moving",
    "nothing works",
    "an instant classic",
]


def write_task_files(directory: str) -> None:
    with open(os.path.join(directory, "validation.tsv"), "w") as f:
        f.write("sentence\tlabel\n")
        for i, sentence in enumerate(SENTENCES):
            f.write(f"{sentence}\t{(i + 1) % 2}\n")


def suite(directory: str, mesh=None) -> dict:
    import jax

    from jaxprompt import data, distributed, evaluation, partitioning
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.models.t5 import param_axes, param_shapes
    from jaxprompt.evaluation.bank import make_bank, predict_mixed

    config, params = load_pretrained("tiny")
    if mesh is not None:
        params = distributed.place(
            params, partitioning.tree_shardings(param_shapes(config), param_axes(config), mesh)
        )
    vocab = data.vocabulary(data.DEFAULT_VOCABULARY)
    task = data.from_files(
        validation=os.path.join(directory, "validation.tsv"),
        input_template="sentence: {sentence}",
        target_field="label",
        verbalizer={"0": "negative", "1": "positive"},
        name="multihost_sst",
    )
    rng = np.random.default_rng(0)
    prompts = (rng.normal(size=(3, 5, config.d_model)) * 0.5).astype(np.float32)
    lengths = data.Lengths(32, 4)
    out = {}
    rank = evaluation.evaluate(
        config, params, prompts[0], task, vocab, batch_size=8, lengths=lengths, mesh=mesh
    )
    out["rank"] = {"predictions": rank.predictions, "metrics": rank.metrics}
    out["greedy"] = evaluation.predict(
        config,
        params,
        prompts[1],
        vocab,
        SENTENCES,
        method="greedy",
        batch_size=8,
        lengths=data.Lengths(32, 6),
        mesh=mesh,
    )
    ensemble = evaluation.evaluate(
        config,
        params,
        {"prompt": prompts},
        task,
        vocab,
        batch_size=8,
        lengths=lengths,
        ensemble="vote",
        mesh=mesh,
    )
    out["ensemble"] = {"predictions": ensemble.predictions, "metrics": ensemble.metrics}
    bank = make_bank(
        {"sst": prompts[0], "echo": prompts[2][:3]},
        labels={"sst": ["negative", "positive"]},
        vocab=vocab,
        targets_length=6,
    )
    tasks = ["sst" if i % 3 else "echo" for i in range(len(SENTENCES))]
    out["bank"] = predict_mixed(
        config,
        params,
        bank,
        vocab,
        tasks,
        SENTENCES,
        inputs_length=32,
        targets_length=6,
        batch_size=8,
        mesh=mesh,
    )
    out["process"] = jax.process_index()
    return out


def main(process_id: int, num_processes: int, port: int, directory: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from jaxprompt.distributed import maybe_initialize
    from jaxprompt.partitioning import make_mesh

    maybe_initialize(
        True,
        coordinator_address=f"localhost:{port}",
        num_processes=num_processes,
        process_id=process_id,
    )
    assert jax.process_count() == num_processes and jax.device_count() == 4 * num_processes
    result = suite(directory, make_mesh((2, 4)))
    with open(os.path.join(directory, f"process_{process_id}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
