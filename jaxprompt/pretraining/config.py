"""The pretraining run's settings and the token ids its objectives use."""

from __future__ import annotations

import dataclasses

SENTINEL_BASE = 32099  # <extra_id_0>; <extra_id_k> = 32099 - k
MASK_ID = 32000  # <extra_id_99>: the encoder's masked-token placeholder (spans use few sentinels)
PROBE_ROWS = 3000  # SST-2 train rows held apart from pretraining, for the linear probe only


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    d_model: int = 256
    num_heads: int = 4
    d_kv: int = 64
    d_ff: int = 1024
    num_layers: int = 4
    num_decoder_layers: int = 4
    tie_word_embeddings: bool = True
    steps: int = 6000
    batch: int = 32
    inputs_length: int = 64
    targets_length: int = 24
    optimizer: str = "adamw_scaled_query"  # or "adamw", "adafactor" (MODEL_CARD.md compares)
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.0  # AdamW only
    z_loss: float = 1e-4
    lm_fraction: float = 0.5  # share of prefix-LM examples
    reconstruct_fraction: float = 0.0  # share of denoising-reconstruction examples (copying)
    # the rest is span corruption
    dictionary_fraction: float = 0.0  # share of reverse-dictionary rows (WordNet gloss -> word)
    mlm_weight: float = 1.0  # auxiliary masked-token loss on the encoder outputs (0: off)
    mlm_positions: int = 10  # at most this many masked encoder tokens per example
    task_text_fraction: float = 0.5  # share of windows from the SST-2 / SuperGLUE stream
    embedding_init: str = "svd"  # "svd": PPMI-SVD word vectors of the corpus; "normal": T5's
    seed: int = 0

    def model_config(self):
        from jaxprompt.config import T5Config

        return T5Config(
            vocab_size=32128,
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_kv=self.d_kv,
            d_ff=self.d_ff,
            num_layers=self.num_layers,
            num_decoder_layers=self.num_decoder_layers,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=self.tie_word_embeddings,
            dropout_rate=0.0,
        )
