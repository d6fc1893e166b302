"""Decoder-only LM architecture: one frozen dataclass for Gemma 3 and the Llama family.

Switches, not subclasses: Gemma 3 is (1 + w) RMS norms around attention and MLP, QK-norm,
GeGLU, embeddings scaled by sqrt(H), interleaved sliding-window and global layers with their
own RoPE bases; Llama 3 is plain pre-norm SwiGLU with its RoPE scaling; Qwen 2.5 adds q/k/v
biases; Qwen 3 adds QK-norm. `from_hf_config` reads transformers' config.json of each.

Notation: B batch, T length, P prompt length, H d_model, N query heads, K key/value heads,
D head width, V vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from jaxprompt.config import DTYPES, ConfigError
from jaxprompt.token_order import as_moves, pipeline_moves, to_checkpoint

# model_type values (transformers' config.json, GGUF's general.architecture) of this family.
DECODER_MODEL_TYPES = ("gemma3", "gemma3_text", "llama", "qwen2", "qwen3")
ACTIVATIONS = ("gelu_tanh", "silu")
LAYER_KINDS = ("global", "sliding")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture of a decoder-only transformer LM, plus its execution settings."""

    model_type: str = "llama"  # one of DECODER_MODEL_TYPES (recorded, exported)
    vocab_size: int = 32000  # V
    d_model: int = 512  # H: width of the residual stream
    num_layers: int = 4
    num_heads: int = 8  # N query heads
    num_kv_heads: int = 8  # K key/value heads (grouped-query when K < N, multi-query when 1)
    head_dim: int = 64  # D, independent of H / N
    d_ff: int = 1408  # MLP hidden width
    activation: str = "silu"  # gated MLP: act(gate(x)) * up(x); one of ACTIVATIONS
    rms_norm_eps: float = 1e-6
    norm_plus_one: bool = False  # Gemma: RMSNorm scales by (1 + w), stored w starts at 0
    sandwich_norms: bool = False  # Gemma 2/3: norms after attention and MLP as well
    qk_norm: bool = False  # Gemma 3, Qwen 3: RMSNorm over D on queries and keys
    qkv_bias: bool = False  # Qwen 2: biases on the q, k, v projections
    scale_embeddings: bool = False  # Gemma: embeddings times sqrt(H)
    tie_word_embeddings: bool = True  # LM head = the embedding table
    query_scale: float | None = None  # attention scores times this (None: D ** -0.5)
    rope_theta: float = 10000.0  # RoPE base of global layers
    rope_local_theta: float | None = None  # of sliding layers (None: rope_theta)
    # RoPE scaling of global layers: None, ("linear", factor) or
    # ("llama3", factor, low_freq_factor, high_freq_factor, original_max_position).
    rope_scaling: tuple | None = None
    layer_kinds: tuple[str, ...] | None = None  # per layer, LAYER_KINDS; None: all global
    sliding_window: int | None = None  # keys within this many positions (sliding layers)
    max_length: int = 8192  # the context the model was trained for
    # Token ids as the model is run (jaxprompt.token_order): padding 0 and EOS 1 whenever the
    # checkpoint's ids were reordered, which `token_moves` records ((checkpoint id, id here)).
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 0
    token_moves: tuple = ()
    # Execution, not architecture:
    dtype: str = "float32"  # compute dtype of activations
    scan_layers: bool = False
    remat_policy: str = "none"
    dropout_rate: float = 0.0  # these models have none: 0 is the only value accepted

    def __post_init__(self):
        if self.layer_kinds is None:
            object.__setattr__(self, "layer_kinds", ("global",) * self.num_layers)
        object.__setattr__(self, "layer_kinds", tuple(self.layer_kinds))
        if self.rope_scaling is not None:
            object.__setattr__(self, "rope_scaling", tuple(self.rope_scaling))
        problems = []
        try:
            object.__setattr__(self, "token_moves", as_moves(self.token_moves))
        except (TypeError, ValueError) as e:
            problems.append(f"token_moves: {e}")
        for field in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{field}={value!r} must be a positive integer")
        for field in ("head_dim", "d_ff", "max_length"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                problems.append(f"{field}={value!r} must be a positive integer")
        if not problems and self.num_heads % self.num_kv_heads:
            problems.append(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.model_type not in DECODER_MODEL_TYPES:
            problems.append(f"model_type={self.model_type!r} must be one of {DECODER_MODEL_TYPES}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation={self.activation!r} must be one of {ACTIVATIONS}")
        if len(self.layer_kinds) != self.num_layers or set(self.layer_kinds) - set(LAYER_KINDS):
            problems.append(
                f"layer_kinds must name {self.num_layers} layers, each one of {LAYER_KINDS}; "
                f"got {self.layer_kinds!r}"
            )
        if "sliding" in self.layer_kinds and not self.sliding_window:
            problems.append("sliding layers need a sliding_window > 0")
        if self.rope_scaling is not None and self.rope_scaling[0] not in ("linear", "llama3"):
            problems.append(f"rope_scaling={self.rope_scaling!r}: 'linear' or 'llama3' only")
        if self.dropout_rate:
            problems.append(f"dropout_rate={self.dropout_rate!r}: these models have no dropout")
        if self.dtype not in DTYPES:
            problems.append(f"dtype={self.dtype!r} must be one of {DTYPES}")
        if self.remat_policy not in ("none", "full", "minimal"):
            problems.append(f"remat_policy={self.remat_policy!r} must be 'none', 'full', 'minimal'")
        if problems:
            raise ConfigError("Invalid DecoderConfig: " + "; ".join(problems))

    def replace(self, **changes) -> "DecoderConfig":
        return dataclasses.replace(self, **changes)

    def architecture(self) -> dict[str, Any]:
        """Fields that determine the parameter shapes and the function computed."""
        skip = ("dtype", "scan_layers", "remat_policy", "dropout_rate")
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        out["layer_kinds"] = list(self.layer_kinds)
        out["rope_scaling"] = None if self.rope_scaling is None else list(self.rope_scaling)
        if self.token_moves:
            out["token_moves"] = [list(move) for move in self.token_moves]
        else:  # (as recorded before checkpoints were reordered)
            del out["token_moves"]
        return out

    @staticmethod
    def from_hf_config(config: Mapping[str, Any], source: str = "config.json") -> "DecoderConfig":
        """transformers' config.json of Gemma3ForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM
        or Qwen3ForCausalLM."""
        model_type = config.get("model_type")
        if model_type not in DECODER_MODEL_TYPES:
            raise ConfigError(
                f"{source}: model_type {model_type!r} is not a decoder-only family jaxprompt "
                f"supports ({', '.join(DECODER_MODEL_TYPES)})."
            )
        heads = config["num_attention_heads"]
        gemma = model_type.startswith("gemma3")
        rope = config.get("rope_parameters") or {}
        scaling = config.get("rope_scaling")
        theta = config.get("rope_theta")
        local_theta = config.get("rope_local_base_freq")
        if gemma and "full_attention" in rope:
            theta = rope["full_attention"].get("rope_theta", theta)
            local_theta = rope.get("sliding_attention", {}).get("rope_theta", local_theta)
            scaling = scaling or rope["full_attention"]
        elif rope:
            theta = rope.get("rope_theta", theta)
            scaling = scaling or rope
        kinds = config.get("layer_types")
        window = config.get("sliding_window")
        if gemma and kinds is None:
            pattern = config.get("sliding_window_pattern", 6)
            kinds = [
                "sliding_attention" if (i + 1) % pattern else "full_attention"
                for i in range(config["num_hidden_layers"])
            ]
        if not gemma and not config.get("use_sliding_window", False):
            kinds, window = None, None
        eos = config.get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) else (eos if eos is not None else 1)
        bos = config.get("bos_token_id", 2 if gemma else 1)
        try:
            ids = _ids_here(bos, int(eos), config.get("pad_token_id"), config["vocab_size"])
            return DecoderConfig(
                model_type="gemma3" if gemma else model_type,
                vocab_size=config["vocab_size"],
                d_model=config["hidden_size"],
                num_layers=config["num_hidden_layers"],
                num_heads=heads,
                num_kv_heads=config.get("num_key_value_heads") or heads,
                head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                d_ff=config["intermediate_size"],
                activation="gelu_tanh" if gemma else "silu",
                rms_norm_eps=config.get("rms_norm_eps", 1e-6),
                norm_plus_one=gemma,
                sandwich_norms=gemma,
                qk_norm=gemma or model_type == "qwen3",
                qkv_bias=model_type == "qwen2" or bool(config.get("attention_bias")),
                scale_embeddings=gemma,
                tie_word_embeddings=config.get("tie_word_embeddings", gemma),
                query_scale=(config.get("query_pre_attn_scalar", 256) ** -0.5) if gemma else None,
                rope_theta=float(theta or (1e6 if gemma else 10000.0)),
                rope_local_theta=float(local_theta or 10000.0) if gemma else None,
                rope_scaling=_rope_scaling(scaling),
                layer_kinds=None
                if kinds is None
                else tuple("sliding" if k == "sliding_attention" else "global" for k in kinds),
                sliding_window=window if kinds is not None else None,
                max_length=config.get("max_position_embeddings", 8192),
                **ids,
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"{source}: missing or malformed field ({e}).") from None

    def to_hf_config(self) -> dict[str, Any]:
        """transformers' config.json of this architecture (for PEFT exports and tests)."""
        hf = {
            "model_type": "gemma3_text" if self.model_type == "gemma3" else self.model_type,
            "architectures": [_HF_CLASS[self.model_type]],
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.d_ff,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_length,
            "bos_token_id": to_checkpoint([self.bos_id], self.token_moves)[0],
            "eos_token_id": to_checkpoint([self.eos_id], self.token_moves)[0],
            "pad_token_id": to_checkpoint([self.pad_id], self.token_moves)[0],
            "rope_theta": self.rope_theta,
            "attention_bias": self.qkv_bias and self.model_type != "qwen2",
        }
        if self.model_type == "gemma3":
            hf.update(
                hidden_activation="gelu_pytorch_tanh",
                query_pre_attn_scalar=round(self.query_scale**-2),
                rope_local_base_freq=self.rope_local_theta,
                sliding_window=self.sliding_window,
                layer_types=[
                    "sliding_attention" if k == "sliding" else "full_attention"
                    for k in self.layer_kinds
                ],
            )
        else:
            hf["hidden_act"] = "silu"
        if self.rope_scaling is not None:
            kind, factor, *rest = self.rope_scaling
            hf["rope_scaling"] = {"rope_type": kind, "factor": factor}
            if kind == "llama3":
                hf["rope_scaling"].update(
                    low_freq_factor=rest[0],
                    high_freq_factor=rest[1],
                    original_max_position_embeddings=rest[2],
                )
        return hf


_HF_CLASS = {
    "gemma3": "Gemma3ForCausalLM",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


def _rope_scaling(scaling: Mapping[str, Any] | None) -> tuple | None:
    if not scaling:
        return None
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    if kind == "default":
        return None
    if kind == "linear":
        return ("linear", float(scaling["factor"]))
    if kind == "llama3":
        return (
            "llama3",
            float(scaling["factor"]),
            float(scaling["low_freq_factor"]),
            float(scaling["high_freq_factor"]),
            int(scaling["original_max_position_embeddings"]),
        )
    raise ConfigError(f"RoPE scaling {kind!r} is not supported (default, linear, llama3).")


def _ids_here(bos: int, eos: int, pad: int | None, vocab: int) -> dict[str, Any]:
    """bos_id, eos_id, pad_id and token_moves of a checkpoint's special ids, as the model is
    run: EOS 1 and padding 0 (jaxprompt.token_order)."""
    moves = pipeline_moves(eos, pad, vocab)
    return dict(bos_id=dict(moves).get(bos, bos), eos_id=1, pad_id=0, token_moves=moves)


def _gemma3(d_model, layers, heads, kv_heads, d_ff, vocab=262144, scaling=None, window=512):
    return DecoderConfig(
        model_type="gemma3",
        vocab_size=vocab,
        d_model=d_model,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=256 if d_model < 5000 else 128,
        d_ff=d_ff,
        activation="gelu_tanh",
        norm_plus_one=True,
        sandwich_norms=True,
        qk_norm=True,
        scale_embeddings=True,
        query_scale=256**-0.5 if d_model < 5000 else 168**-0.5,
        rope_theta=1e6,
        rope_local_theta=1e4,
        rope_scaling=scaling,
        layer_kinds=tuple("sliding" if (i + 1) % 6 else "global" for i in range(layers)),
        sliding_window=window,
        max_length=32768 if d_model < 2000 else 131072,  # 270M and 1B: 32K; 4B-27B: 128K
        bos_id=2,
        eos_id=1,
    )


# Published shapes (google/gemma-3-*-pt, meta-llama/Llama-3.1-8B, Qwen/Qwen3-8B) for `plan`.
DECODER_PRESETS: dict[str, DecoderConfig] = {
    "gemma3_270m": _gemma3(640, 18, 4, 1, 2048),
    "gemma3_1b": _gemma3(1152, 26, 4, 1, 6912),
    "gemma3_4b": _gemma3(2560, 34, 8, 4, 10240, 262208, ("linear", 8.0), 1024),
    "gemma3_12b": _gemma3(3840, 48, 16, 8, 15360, 262208, ("linear", 8.0), 1024),
    "gemma3_27b": _gemma3(5376, 62, 32, 16, 21504, 262208, ("linear", 8.0), 1024),
    "llama3_8b": DecoderConfig(
        model_type="llama",
        vocab_size=128256,
        d_model=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        d_ff=14336,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_theta=500000.0,
        rope_scaling=("llama3", 8.0, 1.0, 4.0, 8192),
        max_length=131072,
        **_ids_here(bos=128000, eos=128001, pad=None, vocab=128256),
    ),
    "qwen3_8b": DecoderConfig(
        model_type="qwen3",
        vocab_size=151936,
        d_model=4096,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        d_ff=12288,
        qk_norm=True,
        tie_word_embeddings=False,
        rope_theta=1000000.0,
        max_length=40960,
        **_ids_here(bos=151643, eos=151645, pad=151643, vocab=151936),
    ),
}
