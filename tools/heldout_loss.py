"""Pretraining loss on text a model has seen vs text it has not: how much it memorised.

    JAX_PLATFORMS=cpu python tools/heldout_loss.py jaxprompt/assets/t5_tiny_lm /tmp/other_model

For each model directory: the token NLL of pretrain_tiny's objectives (half prefix LM, half
span corruption, no masked tokens; 12 batches of 64, fixed seed) on RTE training premises
(in every pretraining run's corpus) and on 1,500 BoolQ validation passages (in none), and the
gap between them. A gap that grows with more pretraining is the model memorising its corpus.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import _common  # noqa: F401  (puts the repository on sys.path)
from jaxprompt.pretraining.config import PretrainConfig
from jaxprompt.pretraining.corpus import token_stream
from jaxprompt.pretraining.objectives import make_batch


def jsonl_texts(path: str, key: str, limit: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)[key] for line in f][:limit]


def objective_nll(model, params, batches) -> float:
    """Mean token NLL of the decoder targets over `batches` (pretrain_tiny batches)."""
    import jax

    from jaxprompt.models.losses import cross_entropy

    @jax.jit
    def summed(params, encoder, decoder_input, target, weights):
        logits = model.apply({"params": params}, encoder, decoder_input)
        sums = cross_entropy(logits, target, weights)
        return sums["nll"], sums["weight"]

    totals = [
        summed(
            params,
            b["encoder_input_tokens"],
            b["decoder_input_tokens"],
            b["decoder_target_tokens"],
            b["decoder_loss_weights"],
        )
        for b in batches
    ]
    return float(sum(t for t, _ in totals) / sum(w for _, w in totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="Hugging Face T5 directories")
    parser.add_argument("--shared", default=os.path.join(_common.REPO, "..", "shared"))
    args = parser.parse_args()

    import sentencepiece

    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY
    from jaxprompt.models.t5 import T5

    superglue = os.path.join(args.shared, "data", "superglue")
    processor = sentencepiece.SentencePieceProcessor(model_file=DEFAULT_VOCABULARY)
    texts = {
        "seen": jsonl_texts(os.path.join(superglue, "rte", "train.jsonl"), "premise"),
        "unseen": jsonl_texts(os.path.join(superglue, "boolq", "val.jsonl"), "passage", 1500),
    }
    pc = PretrainConfig(batch=64, lm_fraction=0.5, mlm_weight=0.0, seed=123)
    batches = {
        name: [make_batch([token_stream(t, processor)], s, pc) for s in range(12)]
        for name, t in texts.items()
    }
    print("model | seen (RTE train premises) | unseen (BoolQ val passages) | gap")
    for path in args.models:
        config, params = load_pretrained(path, dtype=np.float32)
        nll = {name: objective_nll(T5(config), params, b) for name, b in batches.items()}
        print(
            f"{path} | {nll['seen']:.3f} | {nll['unseen']:.3f} | {nll['unseen'] - nll['seen']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
