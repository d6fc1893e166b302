"""Parameter names of decoder-only LMs: transformers' (and so safetensors') names <-> the
params tree of `jaxprompt.models.decoder.DecoderLM`, one table for every family.

transformers stores a projection as weight [out, in]; jaxprompt as kernel [in, out].
Llama's `post_attention_layernorm` is the norm before the MLP; Gemma's is the norm after
attention (Gemma has `pre_feedforward_layernorm` before the MLP). Token-indexed tables are reordered to
the ids the model is run with (`DecoderConfig.token_moves`, jaxprompt.token_order).
"""

from __future__ import annotations

import numpy as np

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.token_order import rows_back, rows_here

_ATTENTION = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "o_proj": "out"}
_MLP = {"gate_proj": "gate", "up_proj": "up", "down_proj": "down"}


def _layer_names(config: DecoderConfig) -> dict[str, tuple[str, ...]]:
    """HF name inside `model.layers.{i}.` -> path inside `layers_i`."""
    names = {}
    for hf, ours in _ATTENTION.items():
        names[f"self_attn.{hf}.weight"] = ("attention", ours, "kernel")
        if config.qkv_bias and hf != "o_proj":
            names[f"self_attn.{hf}.bias"] = ("attention", ours, "bias")
    if config.qk_norm:
        names["self_attn.q_norm.weight"] = ("attention", "query_norm", "scale")
        names["self_attn.k_norm.weight"] = ("attention", "key_norm", "scale")
    for hf, ours in _MLP.items():
        names[f"mlp.{hf}.weight"] = ("mlp", ours, "kernel")
    names["input_layernorm.weight"] = ("pre_attention_norm", "scale")
    if config.sandwich_norms:
        names["post_attention_layernorm.weight"] = ("post_attention_norm", "scale")
        names["pre_feedforward_layernorm.weight"] = ("pre_mlp_norm", "scale")
        names["post_feedforward_layernorm.weight"] = ("post_mlp_norm", "scale")
    else:
        names["post_attention_layernorm.weight"] = ("pre_mlp_norm", "scale")
    return names


def hf_names(config: DecoderConfig) -> dict[str, tuple[str, ...]]:
    """Every HF tensor name of `config` -> its path in the (per-layer) params tree."""
    names = {
        "model.embed_tokens.weight": ("token_embedder", "embedding"),
        "model.norm.weight": ("decoder", "final_norm", "scale"),
    }
    if not config.tie_word_embeddings:
        names["lm_head.weight"] = ("lm_head", "kernel")
    for i in range(config.num_layers):
        for hf, path in _layer_names(config).items():
            names[f"model.layers.{i}.{hf}"] = ("decoder", f"layers_{i}") + path
    return names


# The vocabulary axis of the tables indexed by token id (after transposing to kernels).
_VOCAB_AXES = {("token_embedder", "embedding"): 0, ("lm_head", "kernel"): 1}


def _transposed(path: tuple[str, ...]) -> bool:
    return path[-1] == "kernel"


def params_from_hf(tensors, config: DecoderConfig, source: str, dtype=None) -> dict:
    """A params tree from HF-named tensors (a mapping name -> array-like, read lazily).

    Raises CheckpointError listing every missing tensor and every shape that differs from
    the architecture's, naming `source`.
    """
    from jaxprompt.models.decoder import param_shapes

    expected = param_shapes(config.replace(scan_layers=False))
    params: dict = {}
    problems = []
    for name, path in hf_names(config).items():
        if name not in tensors:
            if name == "lm_head.weight":
                continue
            problems.append(f"{name!r} missing")
            continue
        array = np.asarray(tensors[name])
        if _transposed(path):
            array = array.T
        want = expected
        for key in path:
            want = want[key]
        if tuple(array.shape) != tuple(want.shape):
            problems.append(f"{name!r}: shape {tuple(array.shape)}, the model expects {want.shape}")
            continue
        if path in _VOCAB_AXES:  # rows at the ids the model is run with (token_order)
            array = rows_here(array, config.token_moves, _VOCAB_AXES[path])
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = array.astype(dtype or array.dtype)
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not match a {config.model_type} of this configuration: "
            + "; ".join(problems[:20])
            + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
            + "."
        )
    return params


def hf_from_params(params: dict, config: DecoderConfig) -> dict[str, np.ndarray]:
    """The HF-named float arrays of a (per-layer) params tree: what transformers loads."""
    out = {}
    for name, path in hf_names(config).items():
        node = params
        for key in path:
            node = node[key]
        array = np.asarray(node)
        if path in _VOCAB_AXES:
            array = rows_back(array, config.token_moves, _VOCAB_AXES[path])
        out[name] = np.ascontiguousarray(array.T if _transposed(path) else array)
    return out
