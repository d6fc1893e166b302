"""Builders of transformers' PyTorch T5, the independent reference for parity tests."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="torch is not installed; PyTorch parity tests skipped (pip install 'jaxprompt[torch]').",
)
transformers = pytest.importorskip("transformers", reason="transformers is not installed.")

# Tiny configurations exercising what differs between T5 families: d_kv != d_model / heads,
# unequal encoder/decoder depth, few buckets and a short max_distance so the logarithmic
# bucket branch is reached by short sequences.
TINY_T5_1_0 = dict(
    vocab_size=96,
    d_model=16,
    num_heads=2,
    d_kv=6,
    d_ff=24,
    num_layers=2,
    num_decoder_layers=3,
    feed_forward_proj="relu",
    tie_word_embeddings=True,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=12,
)
TINY_T5_1_1 = dict(
    vocab_size=96,
    d_model=16,
    num_heads=4,
    d_kv=5,
    d_ff=20,
    num_layers=3,
    num_decoder_layers=2,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    relative_attention_num_buckets=10,
    relative_attention_max_distance=16,
)


def build_torch_t5(arch: dict, seed: int = 0, untie: bool = True, family: str = "t5"):
    """A randomly initialised transformers T5ForConditionalGeneration in eval mode, float32.

    transformers >= 5 builds every T5 with lm_head tied to the embedding (T5.1.1 only drops
    the logit scaling); real T5.1.1 checkpoints have their own lm_head, so with `untie` an
    untied architecture gets an lm_head of its own, as the released models do.
    """
    torch.manual_seed(seed)
    config_class, model_class = {
        "t5": (transformers.T5Config, transformers.T5ForConditionalGeneration),
        "mt5": (transformers.MT5Config, transformers.MT5ForConditionalGeneration),
        "umt5": (transformers.UMT5Config, transformers.UMT5ForConditionalGeneration),
    }[family]
    config = config_class(
        **arch, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1
    )
    model = model_class(config).eval()
    if untie and not arch["tie_word_embeddings"]:
        model.lm_head.weight = torch.nn.Parameter(
            torch.randn(arch["vocab_size"], arch["d_model"]) * arch["d_model"] ** -0.5
        )
    # transformers' init leaves layer-norm scales at 1; randomise them so a mix-up shows.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.uniform_(0.5, 1.5)
    return model


def random_ids(
    rng: np.random.Generator, batch: int, length: int, vocab: int, lengths: list[int] | None = None
) -> np.ndarray:
    """Token ids in [2, vocab) with EOS (1) at each row's end and padding (0) after it."""
    ids = rng.integers(2, vocab, size=(batch, length))
    for row, n in enumerate(lengths or [length] * batch):
        ids[row, n - 1] = 1
        ids[row, n:] = 0
    return ids
