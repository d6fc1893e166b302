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
class Recipe:
    """What the quickstart runs on one kind of model (the paper's recipe, scaled down)."""

    input_template: str
    prompt_length: int
    steps: int
    batch_size: int
    learning_rate: float  # Adafactor, no parameter scaling (the paper's prompt recipe)
    eval_every: int
    validation_rows: int | None  # None: all 500 validation sentences
    inputs_length: int  # tokens; SST-2's longest test sentence under either template fits
    hard_prompt: str | None  # zero-shot: an instruction before the input (None: the template)
    few_shot: int  # few-shot hard prompt: this many train examples before the input (0: none)


# The embedded 17.7M-parameter T5: P=100 chosen over P=20/50 by validation accuracy.
T5_RECIPE = Recipe("sentence: {sentence}", 100, 400, 32, 0.3, 100, None, 64, HARD_PROMPT, 0)
# A pretrained decoder-only LM (Gemma 3 270M), fit to 15 minutes on 2 CPU cores. lr 0.1:
# at lr 0.3 the bfloat16 run (the default on a CPU with bfloat16 dot units) reached 67.32 %
# test, the float32 one 86.01; at lr 0.1 float32 gives 86.01 too (docs/measurements.md).
DECODER_RECIPE = Recipe("Review: {sentence}\nSentiment:", 20, 60, 16, 0.1, 20, 200, 64, None, 4)


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    output_dir: str = "quickstart_sst2"
    model: str = TINY_MODEL  # or "gemma-3-270m", a GGUF file, an HF decoder directory
    prompt_length: int | None = None  # None: the recipe's (T5_RECIPE / DECODER_RECIPE)
    steps: int | None = None
    learning_rate: float | None = None
    eval_every: int | None = None
    validation_rows: int | None = None  # None: the recipe's; fewer for a smoke test
    test_rows: int | None = None  # None: all 872
    dtype: str = "auto"  # compute and frozen weights: float32, bfloat16 or auto (see below)

    def recipe(self, decoder_only: bool) -> Recipe:
        """The recipe for the model's kind, with this config's overrides."""
        recipe = DECODER_RECIPE if decoder_only else T5_RECIPE
        overrides = {
            name: getattr(self, name)
            for name in ("prompt_length", "steps", "learning_rate", "eval_every", "validation_rows")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(recipe, **overrides)


def cpu_has_flag(flag: str, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU reports `flag` (Linux /proc/cpuinfo; False elsewhere)."""
    try:
        with open(cpuinfo) as f:
            return any(line.startswith("flags") and f" {flag}" in line for line in f)
    except OSError:
        return False


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU has AMX bfloat16 units (Linux: the `amx_bf16` flag)."""
    return cpu_has_flag("amx_bf16", cpuinfo)


def resolve_dtype(dtype: str, decoder_only: bool = False, cpuinfo: str = "/proc/cpuinfo") -> str:
    """ "auto": bfloat16 where XLA:CPU runs the model's bfloat16 products on units for them,
    float32 elsewhere on CPU and on accelerators (the quickstart's figures there are float32
    ones). Measured (docs/measurements.md): on a CPU with AMX (`amx_bf16`), for every model;
    on one with AVX-512 BF16 only (`avx512_bf16`, e.g. AMD EPYC), for decoder-only LMs, whose
    Gemma 3 270M evaluation runs 2.6x faster there at the same accuracy (61.35 vs 61.47 %
    zero-shot), while the embedded T5 is not measured there. For "auto", the environment's
    JAXPROMPT_DTYPE (float32 or bfloat16) decides instead, e.g. to opt out."""
    import jax

    if dtype == "auto":
        dtype = os.environ.get("JAXPROMPT_DTYPE", "auto")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"dtype {dtype!r}: use float32, bfloat16 or auto.")
    if dtype != "auto":
        return dtype
    if jax.default_backend() != "cpu":
        return "float32"
    fast = cpu_has_amx(cpuinfo) or (decoder_only and cpu_has_flag("avx512_bf16", cpuinfo))
    return "bfloat16" if fast else "float32"


def run_dtypes(dtype: str, decoder_only: bool = False, cpuinfo: str = "/proc/cpuinfo"):
    """(training dtype, scoring dtype). Both are `resolve_dtype`'s, except that "auto" trains
    a decoder-only LM in float32 where it would pick bfloat16: prompt tuning Gemma 3 270M in
    bfloat16 reached 84.17 / 84.52 % test (lr 0.1) and 67.32 (lr 0.3) against 86.01 in
    float32, while scoring in bfloat16 changes its zero- and few-shot accuracy by 0.1 point
    (docs/decoder_only.md). An explicit dtype (flag or JAXPROMPT_DTYPE) is used for both."""
    explicit = dtype != "auto" or os.environ.get("JAXPROMPT_DTYPE", "auto") != "auto"
    scoring = resolve_dtype(dtype, decoder_only, cpuinfo)
    if decoder_only and not explicit and scoring == "bfloat16":
        return "float32", scoring
    return scoring, scoring


def load_model(model: str, dtype: str = "auto"):
    """(config, params, scoring) of `model` in `run_dtypes`' dtypes: config and params to
    train with, and scoring, the (config, params) that test rows are scored with (the same
    pair when the two dtypes agree). The checkpoint is read once: its family decides."""
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.decoder_config import DecoderConfig

    config, params = load_pretrained(model)
    train_dtype, score_dtype = run_dtypes(dtype, isinstance(config, DecoderConfig))
    config, params = _in_dtype(config, params, train_dtype)
    return config, params, _in_dtype(config, params, score_dtype)


def _in_dtype(config, params, dtype: str):
    """(config computing in `dtype`, params cast to it); the same pair if already so."""
    import jax

    if config.dtype == dtype and all(a.dtype == dtype for a in jax.tree.leaves(params)):
        return config, params
    return config.replace(dtype=dtype), jax.tree.map(lambda a: a.astype(dtype), params)


def sst2_task(
    validation_rows: int | None = None,
    test_rows: int | None = None,
    input_template: str = T5_RECIPE.input_template,
    name: str = "quickstart_sst2",
):
    """The bundled SST-2 sentences as a task (optionally the first rows of validation/test)."""
    from jaxprompt.data import from_files
    from jaxprompt.data.tasks import TEXT_TASKS

    task = from_files(
        train=os.path.join(SST2_DIR, "train.tsv"),
        validation=os.path.join(SST2_DIR, "dev.tsv"),
        test=os.path.join(SST2_DIR, "test.tsv"),
        input_template=input_template,
        target_field="label",
        verbalizer=VERBALIZER,
        name=name,
    )
    if validation_rows is None and test_rows is None:
        return task
    rows = {"validation": validation_rows, "test": test_rows}
    subset = dataclasses.replace(
        task, name=f"{name}_subset", load=lambda split: task.load(split)[: rows.get(split)]
    )
    TEXT_TASKS[subset.name] = subset
    return subset


def few_shot_text(task, count: int) -> str:
    """`count` train examples, classes alternating, each as the template and its label,
    then a blank line: the demonstrations of a few-shot hard prompt."""
    by_label: dict[str, list[dict]] = {}
    for example in task.examples("train"):
        by_label.setdefault(example["targets"], []).append(example)
    labels = sorted(by_label)
    demos = [by_label[labels[i % len(labels)]][i // len(labels)] for i in range(count)]
    return "".join(f"{e['inputs']} {e['targets']}\n\n" for e in demos)


def hard_prompt(config, params, vocab, text: str) -> dict:
    """A text as a fixed prompt placed after BOS: the same sequence as the text typed
    before the input ([BOS; text; input]), so that scoring shares its prefix (computed once
    for the batch) and needs no special path."""
    import jax

    from jaxprompt.models.family import family_of
    from jaxprompt.prompts.init import PromptConfig, init_prompt

    ids = tuple(vocab.encode(text))
    prompt = init_prompt(
        jax.random.key(0),
        params["token_embedder"]["embedding"],
        PromptConfig(length=len(ids), init="text", text_token_ids=ids),
        embedding_scale=family_of(config).embedding_scale(config),
    )
    return {"prompt": prompt}


def run(qc: QuickstartConfig = QuickstartConfig()) -> dict:
    import jax
    import numpy as np

    from jaxprompt import data, evaluation
    from jaxprompt.checkpoints import model_vocabulary
    from jaxprompt.decoder_config import DecoderConfig
    from jaxprompt.experiments.tune import RunConfig, tune_and_evaluate
    from jaxprompt.prompts.hard import with_hard_prompt

    start = time.time()
    config, params, scoring = load_model(qc.model, qc.dtype)
    decoder_only = isinstance(config, DecoderConfig)
    dtype, score_dtype = config.dtype, scoring[0].dtype
    described = dtype if score_dtype == dtype else f"{dtype} training, {score_dtype} scoring"
    recipe = qc.recipe(decoder_only)
    vocab = data.vocabulary(model_vocabulary(qc.model))
    task = sst2_task(
        recipe.validation_rows,
        qc.test_rows,
        recipe.input_template,
        "quickstart_sst2_lm" if decoder_only else "quickstart_sst2",
    )
    run_config = RunConfig(
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        eval_every=recipe.eval_every,
        inputs_length=recipe.inputs_length,
    )
    lengths = data.Lengths(run_config.inputs_length, run_config.targets_length)
    test = task.examples("test")
    size = sum(x.size for x in jax.tree.leaves(params))
    print(
        f"jaxprompt quickstart: {qc.model} ({size:,} params), SST-2: "
        f"{len(task.examples('train'))} train / {len(task.examples('validation'))} validation"
        f" / {len(test)} test sentences; {described}",
        flush=True,
    )

    def timed(name, fn):
        begin = time.time()
        value = fn()
        print(f"  {value:6.2f}  {name}  ({time.time() - begin:.0f} s)", flush=True)
        return name, value

    majority_label = int(np.bincount([e["label"] for e in task.examples("train")]).argmax())
    majority = 100 * float(np.mean([e["label"] == majority_label for e in test]))
    rows = [("majority class", majority)]
    accuracy = lambda task, trainable=None, **kw: evaluation.evaluate(
        *scoring, trainable, task, vocab, split="test", lengths=lengths, **kw
    ).metrics["accuracy"]
    if recipe.hard_prompt:
        zero_shot = f"zero-shot hard prompt: {recipe.hard_prompt!r}"
        rows.append(timed(zero_shot, lambda: accuracy(with_hard_prompt(task, recipe.hard_prompt))))
    else:
        rows.append(
            timed(f"zero-shot hard prompt: {recipe.input_template!r}", lambda: accuracy(task))
        )
    if recipe.few_shot:
        demos = hard_prompt(*scoring, vocab, few_shot_text(task, recipe.few_shot))
        rows.append(
            timed(
                f"few-shot hard prompt: {recipe.few_shot} train examples before the input",
                lambda: accuracy(task, demos, prompt_mode="prefix_after_bos"),
            )
        )
    begin = time.time()
    tuned, result, _ = tune_and_evaluate(
        config,
        params,
        vocab,
        task,
        recipe.prompt_length,
        "class_labels",
        run_config,
        qc.output_dir,
        model_path=qc.model,
        scoring=scoring,
    )
    name = (
        f"prompt tuning (P={recipe.prompt_length}, {recipe.steps} steps of "
        f"{recipe.batch_size}, best of validation)"
    )
    print(f"  {tuned:6.2f}  {name}  ({time.time() - begin:.0f} s)", flush=True)
    rows.append((name, tuned))
    minutes = (time.time() - start) / 60
    print(f"\nSST-2 test accuracy ({len(test)} sentences), {minutes:.1f} min in all ({described}):")
    for name, value in rows:
        print(f"  {value:6.2f}  {name}")
    best = os.path.dirname(result.best_prompt_path)
    torch_model = (
        f"AutoModelForCausalLM.from_pretrained(<dir>, gguf_file=<{qc.model} .gguf>)"
        if decoder_only
        else f"T5ForConditionalGeneration.from_pretrained({qc.model!r})"
    )
    print(
        f"\nPrompt: {best}/ (a PEFT adapter with jaxprompt.json: model, task, labels)\n"
        f"Learning curve: {os.path.join(qc.output_dir, 'learning_curve.png')}\n"
        f"Predict: jaxprompt predict --prompt {qc.output_dir} --input reviews.jsonl "
        '--output predictions.jsonl   (one {"sentence": ...} per line)\n'
        f"In PyTorch: PeftModel.from_pretrained({torch_model}, {best!r})"
    )
    values = dict(rows)
    return {
        "majority": majority,
        "zero_shot": rows[1][1],
        "few_shot": rows[2][1] if recipe.few_shot else None,
        "prompt_tuning": tuned,
        "rows": values,
        "minutes": minutes,
        "best_step": result.best_step,
        "dtype": dtype,
        "score_dtype": score_dtype,
        "prompt_path": result.best_prompt_path,
    }
