"""transformers' PyTorch decoder-only LMs, the independent reference for parity tests:
tiny random Gemma 3, Llama 3, Qwen 2.5 and Qwen 3, and their weights as jaxprompt params."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed; parity tests skipped (pip install 'jaxprompt[torch]')."
)
transformers = pytest.importorskip("transformers", reason="transformers is not installed.")

from jaxprompt.checkpoints.decoder_names import params_from_hf  # noqa: E402
from jaxprompt.decoder_config import DecoderConfig  # noqa: E402

_COMMON = dict(
    vocab_size=97,
    hidden_size=24,
    intermediate_size=40,
    num_attention_heads=4,
    max_position_embeddings=256,
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
)
# Each exercises what differs: Gemma 3 a head width apart from H / N, one KV head, layers of
# both kinds with a window shorter than the test sequences; Llama 3 its RoPE scaling and an
# untied head; Qwen 2.5 q/k/v biases; Qwen 3 QK-norm.
TINY = {
    "gemma3": dict(
        _COMMON,
        model_type="gemma3_text",
        num_hidden_layers=3,
        num_key_value_heads=1,
        head_dim=10,
        query_pre_attn_scalar=12,
        sliding_window=5,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_theta=1000.0,
        rope_local_base_freq=100.0,
    ),
    "llama": dict(
        _COMMON,
        model_type="llama",
        num_hidden_layers=2,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        rope_theta=500.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    ),
    "qwen2": dict(
        _COMMON,
        model_type="qwen2",
        num_hidden_layers=2,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        rope_theta=1000.0,
    ),
    "qwen3": dict(
        _COMMON,
        model_type="qwen3",
        num_hidden_layers=2,
        num_key_value_heads=1,
        head_dim=8,
        tie_word_embeddings=False,
        rope_theta=1000.0,
    ),
}
# Llama 3's ids: real tokens at 0 and 1, BOS and EOS near the end, no padding token; the last
# row a reserved token (jaxprompt runs it with its ids reordered: jaxprompt.token_order).
TINY["llama3_ids"] = dict(TINY["llama"], bos_token_id=94, eos_token_id=95, pad_token_id=None)
# GGUF carries no query scale; llama.cpp and transformers agree on head_dim ** -0.5 only
# when head_dim is 256 (transformers' default query_pre_attn_scalar).
TINY["gemma3_gguf"] = dict(TINY["gemma3"], head_dim=256, query_pre_attn_scalar=256)
_CLASSES = {
    "gemma3": "Gemma3ForCausalLM",
    "gemma3_gguf": "Gemma3ForCausalLM",
    "llama": "LlamaForCausalLM",
    "llama3_ids": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


def torch_model(family: str, seed: int = 0):
    """A tiny random transformers model of `family`, in eval mode, float32; norm weights
    perturbed so that (1 + w) and w conventions differ."""
    fields = dict(TINY[family])
    model_type = fields.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **fields)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, _CLASSES[family])(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def jax_side(model) -> tuple[DecoderConfig, dict]:
    """(DecoderConfig, params) of a transformers model: its config.json and its weights."""
    config = DecoderConfig.from_hf_config(model.config.to_dict())
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return config, params_from_hf(state, config, "test model")


_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "input_layernorm": "attn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GEMMA_NORMS = {
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def write_gguf(model, path: str, quantize: bool = False) -> None:
    """A GGUF file of a transformers model as llama.cpp's converter writes one: its names,
    Gemma's norms stored as 1 + w, Llama's q/k rows permuted; matrices in Q8_0 if
    `quantize`. A minimal tokenizer (one token per id) so that readers find one."""
    import gguf

    config = model.config
    arch = "gemma3" if config.model_type.startswith("gemma3") else config.model_type
    writer = gguf.GGUFWriter(path, arch)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    theta = config.rope_parameters
    theta = (theta.get("full_attention") or theta)["rope_theta"]
    writer.add_rope_freq_base(theta)
    if arch == "gemma3":
        writer.add_sliding_window(config.sliding_window)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(config.vocab_size)])
    writer.add_token_scores([0.0] * config.vocab_size)
    writer.add_token_types([1] * config.vocab_size)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    if config.pad_token_id is not None:
        writer.add_pad_token_id(config.pad_token_id)
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        array = tensor.detach().numpy().astype(np.float32)
        if name == "lm_head.weight":
            if config.tie_word_embeddings:
                continue
            out = "output.weight"
        elif name == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif name == "model.norm.weight":
            out = "output_norm.weight"
        else:
            _, _, layer, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            table = dict(_GGUF_NAMES)
            table.update(
                _GEMMA_NORMS if arch == "gemma3" else {"post_attention_layernorm": "ffn_norm"}
            )
            out = f"blk.{layer}.{table[module]}.{kind}"
        short = out.split(".")[-2]
        if arch == "gemma3" and "norm" in short:
            array = array + 1.0
        if arch == "llama" and short in heads:
            n = heads[short]
            array = (
                array.reshape(n, 2, array.shape[0] // n // 2, *array.shape[1:])
                .swapaxes(1, 2)
                .reshape(array.shape)
            )
        if quantize and array.ndim == 2 and array.shape[1] % 32 == 0:
            q = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(out, gguf.quants.quantize(array, q), raw_dtype=q)
        else:
            writer.add_tensor(out, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
