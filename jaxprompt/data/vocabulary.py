"""T5's SentencePiece vocabulary without TensorFlow: sentencepiece plus 100 sentinels.

As seqio.SentencePieceVocabulary(path, extra_ids=100) does, the sentinels are added to the
model as user-defined pieces `▁<extra_id_99>` ... `▁<extra_id_0>` (ids 32000 ... 32099 for
T5's model), so text holding "<extra_id_3>" encodes to its id and decodes back. Same ids
and text as seqio's (a test compares the two); seqio is needed only to register tasks.

`ByteVocabulary` is ByT5's: no SentencePiece model, ids = UTF-8 bytes + 3 (0, 1, 2 are
padding, EOS and unknown; 259 ... 383 ByT5's 125 sentinels, which decoding drops, as
`transformers.ByT5Tokenizer.decode(ids, skip_special_tokens=True)` does; a test compares the
two). `vocabulary("byte")` returns it; a checkpoint whose tokenizer_config.json names
ByT5Tokenizer gets it by default (jaxprompt.checkpoints.model_vocabulary).
"""

from __future__ import annotations

import functools
import os
from typing import Iterable, Sequence

from jaxprompt.data.readers import DataError

DEFAULT_VOCABULARY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "spiece.model"
)  # T5's; see assets/PROVENANCE.md
EXTRA_IDS = 100  # T5's sentinels: 32,000 pieces + 100 = 32,100 ids (embeddings: 32,128).
EOS_ID = 1  # the one definition: padding is 0, EOS 1, in every T5 vocabulary


class Vocabulary:
    """encode(text) -> ids (no EOS); decode(ids) -> text up to the first EOS."""

    def __init__(self, path: str, extra_ids: int = EXTRA_IDS):
        import sentencepiece
        from google.protobuf.message import DecodeError
        from sentencepiece import sentencepiece_model_pb2 as model_pb2

        if not os.path.exists(path):
            raise DataError(f"SentencePiece model {path} not found.")
        self.path = path
        self.extra_ids = extra_ids
        try:
            with open(path, "rb") as f:
                model = model_pb2.ModelProto.FromString(f.read())
            for i in reversed(range(extra_ids)):
                model.pieces.add(
                    piece=f"▁<extra_id_{i}>",
                    score=0.0,
                    type=model_pb2.ModelProto.SentencePiece.USER_DEFINED,
                )
            self.tokenizer = sentencepiece.SentencePieceProcessor(
                model_proto=model.SerializeToString()
            )
        except (RuntimeError, OSError, DecodeError) as e:
            raise DataError(f"{path} is not a SentencePiece model ({e}).") from e

    @property
    def vocab_size(self) -> int:
        """Pieces plus sentinels (32,100 for T5's vocabulary)."""
        return self.tokenizer.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(list(texts))

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID) + 1]
        pieces = self.tokenizer.get_piece_size()
        return self.tokenizer.decode([self.tokenizer.unk_id() if i >= pieces else i for i in ids])


BYTE_VOCABULARY = "byte"  # the name `jaxprompt.data.vocabulary(...)` takes for it
BYTE_OFFSET = 3  # byte b is id b + 3: pad 0, EOS 1, unk 2 come first


class ByteVocabulary:
    """encode(text) -> ids (no EOS); decode(ids) -> text up to the first EOS."""

    path = BYTE_VOCABULARY
    max_piece_chars = 1  # a character is at least one byte, so one token at least

    @property
    def vocab_size(self) -> int:
        """Specials and bytes: 259 (with the sentinels, ByT5's 384 embedding rows)."""
        return BYTE_OFFSET + 256

    def encode(self, text: str) -> list[int]:
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        data = bytes(i - BYTE_OFFSET for i in ids if BYTE_OFFSET <= i < BYTE_OFFSET + 256)
        return data.decode("utf-8", errors="ignore")


def vocabulary_fingerprint(vocab) -> str:
    """A hash of the vocabulary's pieces (SentencePiece: its serialized model, sentinels
    included), the same for copies of one model file wherever they lie."""
    import hashlib

    tokenizer = getattr(vocab, "tokenizer", None)
    if hasattr(vocab, "fingerprint_content"):  # a checkpoint's own tokenizer (tokenizers)
        content = vocab.fingerprint_content()
    elif tokenizer is not None:
        content = tokenizer.serialized_model_proto()
    else:
        content = repr(type(vocab).__name__).encode() + str(vocab.vocab_size).encode()
    return hashlib.sha256(content).hexdigest()[:32]


def longest_piece(vocab) -> int:
    """Characters of the vocabulary's longest piece (a SentencePiece one; 64 for another):
    a text longer than N times this holds more than N tokens."""
    if hasattr(vocab, "max_piece_chars"):
        return vocab.max_piece_chars
    tokenizer = getattr(vocab, "tokenizer", None)
    if tokenizer is None:
        return 64
    return max(len(tokenizer.id_to_piece(i)) for i in range(tokenizer.get_piece_size()))


@functools.lru_cache(maxsize=None)
def vocabulary(path: str | None = None):
    """T5's vocabulary at `path` (default: the bundled spiece.model), cached per path;
    "byte": ByT5's byte vocabulary (ByteVocabulary); a tokenizer.json or a GGUF file: that
    checkpoint's own tokenizer (jaxprompt.data.hf_tokenizer)."""
    if path == BYTE_VOCABULARY:
        return ByteVocabulary()
    if path and (path.endswith((".gguf", "tokenizer.json"))):
        from jaxprompt.data.hf_tokenizer import load_tokenizer

        return load_tokenizer(path)
    return Vocabulary(path or DEFAULT_VOCABULARY)
