"""`jaxprompt quickstart`: prompt-tune the embedded tiny T5 on SST-2, offline, in minutes.

Compares, on the 872 labelled SST-2 test sentences (GLUE dev): the majority class, the
frozen model with a hard prompt (zero-shot), and prompt tuning (this run), with the
paper's recipe scaled down (class-label init, Adafactor lr 0.3, batch 32). Runs on the
base install (`pip install jaxprompt`): no TensorFlow, torch or scikit-learn needed.
"""

from __future__ import annotations

import dataclasses
import os
import time

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
TINY_MODEL = os.path.join(ASSETS, "t5_tiny_lm")
SST2_DIR = os.path.join(ASSETS, "sst2")
HARD_PROMPT = "Is the sentiment of this sentence negative or positive?"
VERBALIZER = {"0": "negative", "1": "positive"}


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    output_dir: str = "quickstart_sst2"
    model: str = TINY_MODEL
    prompt_length: int = 100  # the paper's P; chosen over P=20/50 by validation accuracy
    steps: int = 400  # the rest of the recipe: jaxprompt.experiments.RunConfig's defaults
    eval_every: int = 100
    validation_rows: int | None = None  # None: all 500; fewer for a smoke test
    test_rows: int | None = None  # None: all 872
    dtype: str = "auto"  # compute and frozen weights: float32, bfloat16 or auto (see below)


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU has AMX bfloat16 units (Linux: the `amx_bf16` flag)."""
    try:
        with open(cpuinfo) as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def resolve_dtype(dtype: str) -> str:
    """ "auto": bfloat16 on a CPU with AMX, where XLA runs the model's bfloat16 products on the
    matrix units (jaxprompt.models.dots; the quickstart's accuracy is unchanged:
    docs/measurements.md), float32 elsewhere on CPU (bfloat16 is no faster there) and on
    accelerators (the quickstart's figures are float32 ones). For "auto", the environment's
    JAXPROMPT_DTYPE (float32 or bfloat16) decides instead, e.g. to opt out."""
    import jax

    if dtype == "auto":
        dtype = os.environ.get("JAXPROMPT_DTYPE", "auto")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"dtype {dtype!r}: use float32, bfloat16 or auto.")
    if dtype != "auto":
        return dtype
    return "bfloat16" if jax.default_backend() == "cpu" and cpu_has_amx() else "float32"


def sst2_task(validation_rows: int | None = None, test_rows: int | None = None):
    """The bundled SST-2 sentences as a task (optionally the first rows of validation/test)."""
    from jaxprompt.data import from_files
    from jaxprompt.data.tasks import TEXT_TASKS

    task = from_files(
        train=os.path.join(SST2_DIR, "train.tsv"),
        validation=os.path.join(SST2_DIR, "dev.tsv"),
        test=os.path.join(SST2_DIR, "test.tsv"),
        input_template="sentence: {sentence}",
        target_field="label",
        verbalizer=VERBALIZER,
        name="quickstart_sst2",
    )
    if validation_rows is None and test_rows is None:
        return task
    rows = {"validation": validation_rows, "test": test_rows}
    subset = dataclasses.replace(
        task, name="quickstart_sst2_subset", load=lambda split: task.load(split)[: rows.get(split)]
    )
    TEXT_TASKS[subset.name] = subset
    return subset


def run(qc: QuickstartConfig = QuickstartConfig()) -> dict:
    import jax
    import numpy as np

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate
    from jaxprompt.prompts.hard import with_hard_prompt

    start = time.time()
    dtype = resolve_dtype(qc.dtype)
    config, params = load_pretrained(qc.model, dtype=jax.numpy.dtype(dtype))
    config = config.replace(dtype=dtype)
    vocab = data.vocabulary(os.path.join(qc.model, "spiece.model"))
    task = sst2_task(qc.validation_rows, qc.test_rows)
    run_config = RunConfig(steps=qc.steps, eval_every=qc.eval_every)
    lengths = data.Lengths(run_config.inputs_length, run_config.targets_length)
    test = task.examples("test")
    print(
        f"jaxprompt quickstart: embedded T5 ({sum(x.size for x in jax.tree.leaves(params)):,} "
        f"params), SST-2: {len(task.examples('train'))} train / {len(task.examples('validation'))}"
        f" validation / {len(test)} test sentences; {dtype}",
        flush=True,
    )

    majority_label = int(np.bincount([e["label"] for e in task.examples("train")]).argmax())
    majority = 100 * float(np.mean([e["label"] == majority_label for e in test]))
    zero_shot = evaluation.evaluate(
        config,
        params,
        None,
        with_hard_prompt(task, HARD_PROMPT),
        vocab,
        split="test",
        lengths=lengths,
    ).metrics["accuracy"]
    tuned, result, _ = tune_and_evaluate(
        config,
        params,
        vocab,
        task,
        qc.prompt_length,
        "class_labels",
        run_config,
        qc.output_dir,
        model_path=qc.model,
    )
    minutes = (time.time() - start) / 60
    rows = [
        ("majority class", majority),
        (f"zero-shot hard prompt: {HARD_PROMPT!r}", zero_shot),
        (f"prompt tuning (P={qc.prompt_length}, {qc.steps} steps, best of validation)", tuned),
    ]
    print(f"\nSST-2 test accuracy ({len(test)} sentences), {minutes:.1f} min in all ({dtype}):")
    for name, value in rows:
        print(f"  {value:6.2f}  {name}")
    best = os.path.dirname(result.best_prompt_path)
    print(
        f"\nPrompt: {best}/ (a PEFT adapter with jaxprompt.json: model, task, labels)\n"
        f"Learning curve: {os.path.join(qc.output_dir, 'learning_curve.png')}\n"
        f"Predict: jaxprompt predict --prompt {qc.output_dir} --input reviews.jsonl "
        '--output predictions.jsonl   (one {"sentence": ...} per line)\n'
        f"In PyTorch: PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained("
        f"{qc.model!r}), {best!r})"
    )
    return {
        "majority": majority,
        "zero_shot": zero_shot,
        "prompt_tuning": tuned,
        "minutes": minutes,
        "best_step": result.best_step,
        "dtype": dtype,
        "prompt_path": result.best_prompt_path,
    }
