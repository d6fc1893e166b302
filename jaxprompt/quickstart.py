"""`jaxprompt quickstart`: prompt-tune the embedded tiny T5 on SST-2, offline, in minutes.

Compares, on the 872 labelled SST-2 test sentences (GLUE dev): the majority class, the
frozen model with a hard prompt (zero-shot), and prompt tuning (this run), with the
paper's recipe scaled down (class-label init, Adafactor lr 0.3, batch 32).
"""

from __future__ import annotations

import dataclasses
import os
import time

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
TINY_MODEL = os.path.join(ASSETS, "t5_tiny_lm")
SST2_DIR = os.path.join(ASSETS, "sst2")
HARD_PROMPT = "Is the sentiment of this sentence negative or positive?"


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    output_dir: str = "quickstart_sst2"
    steps: int = 1500
    prompt_length: int = 20
    batch_size: int = 32
    learning_rate: float = 0.3
    eval_every: int = 250
    inputs_length: int = 64
    seed: int = 0


def sst2_task():
    from jaxprompt.data import from_files
    return from_files(train=os.path.join(SST2_DIR, "train.tsv"),
                      validation=os.path.join(SST2_DIR, "dev.tsv"),
                      test=os.path.join(SST2_DIR, "test.tsv"), input_template="sentence: {sentence}",
                      target_field="label", verbalizer={"0": "negative", "1": "positive"},
                      name="quickstart_sst2")


def run(qc: QuickstartConfig = QuickstartConfig()) -> dict[str, float]:
    import jax
    import numpy as np

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.hard_prompts import with_hard_prompt
    from jaxprompt.optimizers import OptimizerConfig
    from jaxprompt.prompts import PromptConfig, init_prompt
    from jaxprompt.train import StepConfig
    from jaxprompt.trainer import TrainerConfig, train

    start = time.time()
    config, params = load_pretrained(TINY_MODEL, dtype=np.float32)
    vocab = data.vocabulary(os.path.join(TINY_MODEL, "spiece.model"))
    task = sst2_task()
    lengths = data.Lengths(qc.inputs_length, 4)
    test = task.examples("test")
    print(f"jaxprompt quickstart: embedded T5 ({sum(x.size for x in jax.tree.leaves(params)):,} "
          f"params), SST-2: {len(task.examples('train'))} train / {len(task.examples('validation'))}"
          f" validation / {len(test)} test sentences")

    majority_label = int(np.bincount([e["label"] for e in task.examples("train")]).argmax())
    majority = 100 * float(np.mean([e["label"] == majority_label for e in test]))
    zero_shot = evaluation.evaluate(config, params, None, with_hard_prompt(task, HARD_PROMPT),
                                    vocab, split="test", lengths=lengths).metrics["accuracy"]

    labels = tuple(tuple(vocab.encode(word)) for word in task.label_names)
    prompt = init_prompt(jax.random.key(qc.seed), params["token_embedder"]["embedding"],
                         PromptConfig(length=qc.prompt_length, init="class_labels",
                                      label_token_ids=labels))

    def eval_fn(trainable, frozen):
        return evaluation.evaluate(config, frozen, trainable["prompt"], task, vocab,
                                   split="validation", lengths=lengths).metrics

    result = train(
        model_config=config, frozen_params=params, prompt=prompt,
        train_batches=data.train_batches(task.name, qc.batch_size, lengths, seed=qc.seed),
        output_dir=qc.output_dir, model_path=TINY_MODEL,
        optimizer_config=OptimizerConfig(learning_rate=qc.learning_rate),
        step_config=StepConfig(enable_dropout=False),
        eval_batches=data.eval_batches(task.name, "validation", qc.batch_size, lengths),
        eval_fn=eval_fn,
        trainer_config=TrainerConfig(steps=qc.steps, eval_every=qc.eval_every, log_every=25,
                                     eval_metric="accuracy", eval_mode="max", seed=qc.seed))
    best_prompt = np.load(result.best_prompt_path)
    tuned = evaluation.evaluate(config, params, best_prompt, task, vocab, split="test",
                                lengths=lengths).metrics["accuracy"]
    minutes = (time.time() - start) / 60
    rows = [("majority class", majority), (f"zero-shot hard prompt: {HARD_PROMPT!r}", zero_shot),
            (f"prompt tuning (P={qc.prompt_length}, {qc.steps} steps, best of validation)", tuned)]
    print(f"\nSST-2 test accuracy (872 sentences), {minutes:.1f} min in all:")
    for name, value in rows:
        print(f"  {value:6.2f}  {name}")
    print(f"\nPrompt: {result.best_prompt_path}\nLearning curve: "
          f"{os.path.join(qc.output_dir, 'learning_curve.png')}\nUse it in PyTorch (PEFT): "
          f"jaxprompt export --checkpoint {qc.output_dir} --format peft --out "
          f"{os.path.join(qc.output_dir, 'peft')} --base_model {TINY_MODEL}")
    return {"majority": majority, "zero_shot": zero_shot, "prompt_tuning": tuned,
            "minutes": minutes, "best_step": result.best_step}
