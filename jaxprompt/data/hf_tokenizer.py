"""A checkpoint's own tokenizer (Hugging Face `tokenizers`): from tokenizer.json, or built
from a GGUF file's `tokenizer.ggml.*` metadata (transformers' GGUF converter).

Decoder-only LMs score a target as the continuation of its input, so a target is encoded
with a leading space (`target_prefix`): "Sentiment:" + " positive" is how the text reads,
and how SentencePiece-style vocabularies (Gemma, Llama 2) and byte-level BPE (Llama 3,
Qwen) split it. Ids: the pipeline pads with 0 and ends sequences with EOS id 1 (Gemma's
layout); a checkpoint with other ids (Llama 3, Qwen) is run with its ids reordered
(jaxprompt.token_order), and its tokenizer's ids are mapped the same way here: `encode`
returns, and `decode` takes, the ids the model is run with.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Iterable, Sequence

from jaxprompt.data.readers import DataError
from jaxprompt.token_order import Moves, pipeline_moves, to_checkpoint, to_here


class TokenizerVocabulary:
    """encode(text) -> ids (no BOS, no EOS); decode(ids) -> text up to the first EOS."""

    target_prefix = " "

    eos_id = 1  # the pipeline's ids (data.vocabulary.EOS_ID), whatever the checkpoint's
    pad_id = 0

    def __init__(self, tokenizer, path: str, token_moves: Moves = ()):
        self.tokenizer_backend = tokenizer
        self.path = path
        self.token_moves = token_moves
        self.max_piece_chars = max(len(piece) for piece in tokenizer.get_vocab())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer_backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer_backend.encode(text, add_special_tokens=False).ids
        return to_here(ids, self.token_moves)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer_backend.encode_batch(list(texts), add_special_tokens=False)
        return [to_here(e.ids, self.token_moves) for e in encoded]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        ids = to_checkpoint([i for i in ids if i != self.pad_id], self.token_moves)
        return self.tokenizer_backend.decode(ids, skip_special_tokens=True)

    def fingerprint_content(self) -> bytes:
        return self.tokenizer_backend.to_str().encode()


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str) -> TokenizerVocabulary:
    """The tokenizer of a tokenizer.json file, a directory holding one, or a GGUF file."""
    if path.endswith(".gguf"):
        return _from_gguf(path)
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise DataError(
            f"{path}: no tokenizer.json. A decoder-only checkpoint needs its own tokenizer: "
            "copy the model's tokenizer.json beside its config.json, or pass --vocabulary."
        )
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(file)
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
        raise DataError(f"{file} is not a tokenizers JSON file ({str(e)[:200]}).") from None
    return TokenizerVocabulary(tokenizer, file, _token_moves(file, tokenizer))


def _token_moves(file: str, tokenizer) -> Moves:
    """The reordering of the model whose config.json sits beside tokenizer.json (the one
    `load_pretrained` applies to its rows); without one, the tokenizer must already have
    Gemma's ids (padding 0, EOS 1)."""
    from jaxprompt.config import ConfigError
    from jaxprompt.decoder_config import DecoderConfig

    config_file = os.path.join(os.path.dirname(file), "config.json")
    try:
        with open(config_file, encoding="utf-8") as f:
            return DecoderConfig.from_hf_config(json.load(f), config_file).token_moves
    except FileNotFoundError:
        pass
    except (OSError, ValueError, ConfigError) as e:
        raise DataError(f"{config_file}: cannot read the model's token ids ({e}).") from None
    if tokenizer.token_to_id("<pad>") != 0 or tokenizer.token_to_id("<eos>") != 1:
        raise DataError(
            f"{file}: no config.json beside it to say the model's EOS and padding ids, and its "
            "ids 0 and 1 are not <pad> and <eos>. Use the tokenizer.json of the model's "
            "directory (the one holding its config.json)."
        )
    return ()


def _from_gguf(path: str) -> TokenizerVocabulary:
    architecture, tokenizer_dict, config, convert = _gguf_tokenizer_parts(path)
    tokenizer, _ = convert(architecture, tokenizer_dict)
    tokens = tokenizer_dict["tokens"]
    eos = tokens.index(config["eos_token"]) if config.get("eos_token") in tokens else 1
    pad = tokens.index(config["pad_token"]) if config.get("pad_token") in tokens else None
    return TokenizerVocabulary(tokenizer, path, pipeline_moves(eos, pad, len(tokens)))


def _gguf_tokenizer_parts(path: str):
    """(architecture, tokenizer metadata, special tokens, converter) of a GGUF file, read by
    transformers' GGUF converter. It must be the one of transformers >= 5.18
    (integrations/gguf/gguf_tokenizer_mapping): the older one (integrations/ggml, 5.17 and
    before) builds a Gemma 3 tokenizer that splits text differently (measured: the
    quickstart's zero-shot accuracy falls from 61 % to 49 %), so it is refused."""
    try:
        from transformers.integrations.gguf import gguf_tokenizer_mapping as mapping

        convert = mapping.convert_gguf_tokenizer
    except (ImportError, AttributeError) as e:
        from importlib import metadata

        try:
            found = f"this is {metadata.version('transformers')}, whose GGUF tokenizer converter "
            found += "splits Gemma 3 text differently"
        except metadata.PackageNotFoundError:
            found = "it is not installed"
        raise DataError(
            f"{path}: building a GGUF file's tokenizer needs transformers >= 5.18 ({found}): "
            "pip install 'jaxprompt[gemma]'."
        ) from e
    return (*mapping.get_gguf_tokenizer(path), convert)


def tokenizer_fingerprint(vocab: TokenizerVocabulary) -> str:
    return hashlib.sha256(vocab.fingerprint_content()).hexdigest()[:32]
