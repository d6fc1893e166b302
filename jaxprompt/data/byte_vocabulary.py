"""ByT5's byte-level vocabulary: no SentencePiece model, ids = UTF-8 bytes + 3.

Ids 0, 1, 2 are padding, EOS and unknown; byte b is id b + 3 (3 ... 258); ids 259 ... 383
are ByT5's 125 sentinels (`<extra_id_N>`), which decoding drops, as
`transformers.ByT5Tokenizer.decode(ids, skip_special_tokens=True)` does. Same ids and text as
that tokenizer (a test compares the two). Select it with `--vocabulary byte`; a checkpoint
whose tokenizer_config.json names ByT5Tokenizer gets it by default.
"""

from __future__ import annotations

from typing import Iterable, Sequence

BYTE_VOCABULARY = "byte"  # the name `jaxprompt.data.vocabulary(...)` takes for it
OFFSET = 3  # pad 0, EOS 1, unk 2
SENTINELS = 125
EOS_ID = 1


class ByteVocabulary:
    """encode(text) -> ids (no EOS); decode(ids) -> text up to the first EOS."""

    path = BYTE_VOCABULARY
    max_piece_chars = 1  # a character is at least one byte, so one token at least

    @property
    def vocab_size(self) -> int:
        """Specials and bytes: 259 (with the sentinels, ByT5's 384 embedding rows)."""
        return OFFSET + 256

    def encode(self, text: str) -> list[int]:
        return [b + OFFSET for b in text.encode("utf-8")]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if EOS_ID in ids:
            ids = ids[:ids.index(EOS_ID)]
        data = bytes(i - OFFSET for i in ids if OFFSET <= i < OFFSET + 256)
        return data.decode("utf-8", errors="ignore")
