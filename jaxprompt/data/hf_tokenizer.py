"""A checkpoint's own tokenizer (Hugging Face `tokenizers`): from tokenizer.json, or built
from a GGUF file's `tokenizer.ggml.*` metadata (transformers' GGUF converter).

Decoder-only LMs score a target as the continuation of its input, so a target is encoded
with a leading space (`target_prefix`): "Sentiment:" + " positive" is how the text reads,
and how SentencePiece-style vocabularies (Gemma, Llama 2) and byte-level BPE (Llama 3,
Qwen) split it. Ids: the pipeline pads with 0 and ends targets with EOS id 1, which is
Gemma's layout; a tokenizer whose EOS is not 1 or whose id 0 is a real token is refused
by `check_pipeline_ids` until the pipeline takes other ids.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Iterable, Sequence

from jaxprompt.data.readers import DataError


class TokenizerVocabulary:
    """encode(text) -> ids (no BOS, no EOS); decode(ids) -> text up to the first EOS."""

    target_prefix = " "

    def __init__(self, tokenizer, path: str, eos_id: int, pad_id: int | None):
        self.tokenizer_backend = tokenizer
        self.path = path
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.max_piece_chars = max(len(piece) for piece in tokenizer.get_vocab())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer_backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer_backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer_backend.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encoded]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer_backend.decode(ids, skip_special_tokens=True)

    def fingerprint_content(self) -> bytes:
        return self.tokenizer_backend.to_str().encode()

    def check_pipeline_ids(self) -> None:
        """Refuses a tokenizer whose EOS is not 1 or whose padding is not 0 (the pipeline's)."""
        if self.eos_id != 1 or self.pad_id != 0:
            raise DataError(
                f"{self.path}: EOS id {self.eos_id} and padding id {self.pad_id}; jaxprompt's "
                "data pipeline pads with 0 and ends sequences with 1 (Gemma's ids). Prompt "
                "tuning this model's family through the pipeline is not supported yet; the "
                "model itself loads and runs (jaxprompt.models.causal)."
            )


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str) -> TokenizerVocabulary:
    """The tokenizer of a tokenizer.json file, a directory holding one, or a GGUF file."""
    if path.endswith(".gguf"):
        vocab = _from_gguf(path)
        vocab.check_pipeline_ids()
        return vocab
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
    eos, pad = _special_ids(os.path.dirname(file), tokenizer)
    vocab = TokenizerVocabulary(tokenizer, file, eos, pad)
    vocab.check_pipeline_ids()
    return vocab


def _special_ids(directory: str, tokenizer) -> tuple[int, int | None]:
    """EOS and padding ids from config.json / tokenizer_config.json beside tokenizer.json."""
    import json

    eos = pad = None
    for name in ("config.json", "generation_config.json"):
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError):
            continue
        eos = eos if eos is not None else config.get("eos_token_id")
        pad = pad if pad is not None else config.get("pad_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if eos is None:
        eos = tokenizer.token_to_id("<eos>") or tokenizer.token_to_id("</s>")
    return (1 if eos is None else int(eos)), pad


def _from_gguf(path: str) -> TokenizerVocabulary:
    architecture, tokenizer_dict, config, convert = _gguf_tokenizer_parts(path)
    tokenizer, _ = convert(architecture, tokenizer_dict)
    tokens = tokenizer_dict["tokens"]
    eos = tokens.index(config["eos_token"]) if config.get("eos_token") in tokens else 1
    pad = tokens.index(config["pad_token"]) if config.get("pad_token") in tokens else None
    return TokenizerVocabulary(tokenizer, path, eos, pad)


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
