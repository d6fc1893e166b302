"""Evaluation throughput: rank classification and greedy decoding (jaxprompt) vs PEFT
`generate`, and a mixed-task batch vs a single-task batch, side by side in one run.

    python tools/bench_eval.py                 # t5_1_1_small shape, P=100, batch 32, 128/8

Random weights, so decoding runs to the full target length (no early EOS) on both sides.
"""

from __future__ import annotations

import argparse
import os

from _common import add_shape_flags, median_seconds as timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_flags(parser, batch=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_peft", action="store_true")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxprompt import evaluation
    from jaxprompt.config import T5Config
    from jaxprompt.models.t5 import init_params
    from jaxprompt.evaluation.bank import make_bank

    config = T5Config.preset(args.preset).replace(dropout_rate=0.0)
    params = init_params(config, jax.random.key(0))
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 32000, (args.batch, args.inputs)).astype(np.int32)
    ids[:, -1] = 1
    ids = jnp.asarray(ids)
    prompt = jnp.asarray(rng.normal(size=(args.prompt_length, config.d_model)), jnp.float32)
    candidates = jnp.asarray([[2841, 1, 0], [1465, 1, 0]], jnp.int32)  # negative / positive

    rank = timed(
        lambda: evaluation.score_candidates(
            config, params, prompt, ids, candidates
        ).block_until_ready(),
        args.repeats,
    )
    greedy = timed(
        lambda: evaluation.greedy_decode(
            config, params, prompt, ids, args.targets
        ).block_until_ready(),
        args.repeats,
    )

    other = jnp.asarray(rng.normal(size=(args.prompt_length // 2, config.d_model)), jnp.float32)
    bank = make_bank({"a": np.asarray(prompt), "b": np.asarray(other)})
    mixed_prompt, mixed_mask = bank.gather(["a", "b"] * (args.batch // 2))
    single_prompt, single_mask = bank.gather(["a"] * args.batch)
    mixed = timed(
        lambda: evaluation.score_candidates(
            config, params, mixed_prompt, ids, candidates, prompt_mask=mixed_mask
        ).block_until_ready(),
        args.repeats,
    )
    single = timed(
        lambda: evaluation.score_candidates(
            config, params, single_prompt, ids, candidates, prompt_mask=single_mask
        ).block_until_ready(),
        args.repeats,
    )

    print(
        f"config: {args.preset}, P={args.prompt_length}, batch {args.batch}, inputs "
        f"{args.inputs}, targets {args.targets}, float32, CPU threads {os.cpu_count()}, "
        f"median of {args.repeats}"
    )
    print(f"{'':44}{'s/batch':>9}{'ex/s':>9}")
    rows = [
        ("jaxprompt rank classification (2 labels)", rank),
        (f"jaxprompt greedy decoding ({args.targets} tokens, KV cache)", greedy),
        ("jaxprompt rank, mixed-task batch (bank of 2)", mixed),
        ("jaxprompt rank, single-task batch (same bank)", single),
    ]

    if not args.skip_peft:
        import peft
        import torch
        import transformers

        torch.manual_seed(0)
        hf_config = transformers.T5Config(**{**config.to_hf_config(), "dropout_rate": 0.0})
        model = peft.get_peft_model(
            transformers.T5ForConditionalGeneration(hf_config),
            peft.PromptTuningConfig(
                task_type=peft.TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=args.prompt_length
            ),
        ).eval()
        torch_ids = torch.tensor(np.asarray(ids), dtype=torch.long)

        def generate():
            with torch.no_grad():
                model.generate(
                    input_ids=torch_ids,
                    attention_mask=torch.ones_like(torch_ids),
                    max_new_tokens=args.targets,
                    min_new_tokens=args.targets,
                    num_beams=1,
                    do_sample=False,
                )

        rows.append(
            (f"PEFT generate ({args.targets} tokens, greedy)", timed(generate, args.repeats))
        )
    for name, seconds in rows:
        print(f"{name:44}{seconds:9.3f}{args.batch / seconds:9.1f}")
    print(f"mixed / single-task examples/s: {single / mixed:.3f}x")
    if not args.skip_peft:
        print(
            f"jaxprompt greedy / PEFT generate examples/s: {rows[-1][1] / greedy:.2f}x; "
            f"rank classification / PEFT generate: {rows[-1][1] / rank:.2f}x"
        )


if __name__ == "__main__":
    main()
