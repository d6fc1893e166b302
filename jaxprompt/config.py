"""T5 architecture configuration: a frozen dataclass, presets, and HF config.json import.

Notation used across jaxprompt: B batch, T sequence length, P prompt length,
H (= d_model) hidden size, V vocabulary size.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

# Activations the feed-forward block accepts, named as transformers'
# `feed_forward_proj` names them ("gated-gelu" is T5.1.1's GEGLU).
FEED_FORWARD_PROJ = ("relu", "gelu", "silu", "gated-relu", "gated-gelu", "gated-silu")
DTYPES = ("float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A configuration that cannot describe a T5 model."""


# transformers' model_type values with T5's architecture and parameter names: mT5 is the
# multilingual T5.1.1 (250k vocabulary); ByT5 checkpoints say "t5".
HF_MODEL_TYPES = ("t5", "mt5", "umt5")


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Architecture of a T5 encoder-decoder (T5 1.0, T5.1.1, LM-adapted T5.1.1).

    Field names follow transformers' `T5Config` so a `config.json` maps 1:1.
    """

    vocab_size: int = (
        32128  # V: rows of the embedding table (32,000 pieces + 100 sentinels, padded).
    )
    d_model: int = 512  # H: width of the residual stream.
    num_heads: int = 8  # attention heads.
    d_kv: int = 64  # per-head key/value size; independent of d_model / num_heads.
    d_ff: int = 2048  # feed-forward hidden size.
    num_layers: int = 6  # encoder layers.
    num_decoder_layers: int | None = None  # decoder layers; None means num_layers.
    feed_forward_proj: str = "relu"  # one of FEED_FORWARD_PROJ ("gated-gelu" for T5.1.1).
    tie_word_embeddings: bool = True  # T5 1.0: logits use the embedding, scaled by H**-0.5.
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    # UMT5: every self-attention layer has its own relative position table (T5: the first
    # layer's, shared by the stack).
    relative_bias_per_layer: bool = False
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"  # compute dtype of activations (bfloat16 on TPU).
    scan_layers: bool = False  # run each stack's layers under nn.scan (stacked params).
    remat_policy: str = "none"  # "none", "full" or "minimal" (save matmul outputs only).

    def __post_init__(self):
        if self.num_decoder_layers is None:
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        problems = []
        for field in (
            "vocab_size",
            "d_model",
            "num_heads",
            "d_kv",
            "d_ff",
            "num_layers",
            "num_decoder_layers",
            "relative_attention_num_buckets",
            "relative_attention_max_distance",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{field}={value!r} must be a positive integer")
        if self.feed_forward_proj not in FEED_FORWARD_PROJ:
            problems.append(
                f"feed_forward_proj={self.feed_forward_proj!r} must be one of {FEED_FORWARD_PROJ}"
            )
        if self.dtype not in DTYPES:
            problems.append(f"dtype={self.dtype!r} must be one of {DTYPES}")
        if self.remat_policy not in ("none", "full", "minimal"):
            problems.append(
                f"remat_policy={self.remat_policy!r} must be 'none', 'full' or 'minimal'"
            )
        if (
            not isinstance(self.layer_norm_epsilon, (int, float))
            or not 0.0 < self.layer_norm_epsilon < 1.0
        ):
            problems.append(f"layer_norm_epsilon={self.layer_norm_epsilon!r} must be in (0, 1)")
        if not isinstance(self.dropout_rate, (int, float)) or not 0.0 <= self.dropout_rate < 1.0:
            problems.append(f"dropout_rate={self.dropout_rate!r} must be in [0, 1)")
        if problems:
            raise ConfigError("Invalid T5Config: " + "; ".join(problems))

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """The activation name: relu, gelu (tanh approximation when gated), silu."""
        return self.feed_forward_proj.split("-")[-1]

    def replace(self, **changes) -> "T5Config":
        return dataclasses.replace(self, **changes)

    def architecture(self) -> dict[str, Any]:
        """Fields that determine the parameter shapes and the function computed."""
        skip = ("dtype", "scan_layers", "remat_policy", "dropout_rate")
        if not self.relative_bias_per_layer:  # as runs recorded it before UMT5 was supported
            skip += ("relative_bias_per_layer",)
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    @staticmethod
    def preset(name: str) -> "T5Config":
        """Returns the named preset, e.g. `T5Config.preset("t5_1_1_base")`."""
        if name not in PRESETS:
            raise ConfigError(f"Unknown T5 preset {name!r}. Known presets: {', '.join(PRESETS)}.")
        return PRESETS[name]

    @staticmethod
    def from_hf_config(config: Mapping[str, Any] | str | os.PathLike) -> "T5Config":
        """Reads a transformers `config.json` (a dict or a path to the file)."""
        source = "config dict"
        if not isinstance(config, Mapping):
            source = os.fspath(config)
            try:
                with open(source, encoding="utf-8") as f:
                    config = json.load(f)
            except (OSError, ValueError, RecursionError) as e:  # JSON and UTF-8 errors
                raise ConfigError(f"Cannot read {source}: {str(e)[:200]}") from None
            if not isinstance(config, Mapping):
                raise ConfigError(
                    f"{source}: a JSON object is expected, found a {type(config).__name__}."
                )
        model_type = config.get("model_type")
        if model_type not in HF_MODEL_TYPES:
            raise ConfigError(
                f"{source}: model_type is {model_type!r}, not one jaxprompt loads: "
                f"{', '.join(HF_MODEL_TYPES)} (T5ForConditionalGeneration: T5 1.0, T5.1.1, "
                "LM-adapted, FLAN-T5, ByT5's architecture; MT5ForConditionalGeneration; "
                "UMT5ForConditionalGeneration) or the decoder-only gemma3, gemma3_text, "
                "llama, qwen2, qwen3."
            )
        required = ("vocab_size", "d_model", "num_heads", "d_kv", "d_ff", "num_layers")
        missing = [k for k in required if k not in config]
        if missing:
            raise ConfigError(f"{source}: missing keys {missing} needed to build a T5.")
        fields = {f.name for f in dataclasses.fields(T5Config)}
        kwargs = {k: config[k] for k in fields if k in config and k != "dtype"}
        kwargs.setdefault("tie_word_embeddings", True)  # transformers' default.
        if "scale_decoder_outputs" in config:
            # transformers >= 5 always writes tie_word_embeddings=true for T5 and records the
            # architecture in scale_decoder_outputs: true for T5 1.0 (tied head, logits scaled
            # by H**-0.5), false for T5.1.1 (its own lm_head, unscaled).
            kwargs["tie_word_embeddings"] = bool(config["scale_decoder_outputs"])
        if model_type == "umt5":
            kwargs["relative_bias_per_layer"] = True
        if model_type == "mt5":
            # mT5 is T5.1.1: its own lm_head (or shared.weight where a writer tied it), logits
            # never scaled; transformers' MT5Config always says tie_word_embeddings=true.
            kwargs["tie_word_embeddings"] = False
        try:
            return T5Config(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e
        except (TypeError, ValueError, OverflowError) as e:
            raise ConfigError(
                f"{source}: a value has the wrong type or range "
                f"({type(e).__name__}: {str(e)[:200]})."
            ) from None

    def to_hf_config(self) -> dict[str, Any]:
        """The transformers `config.json` dict of this architecture."""
        hf = {k: v for k, v in self.architecture().items()}
        umt5 = self.relative_bias_per_layer
        hf.update(
            model_type="umt5" if umt5 else "t5",
            architectures=[
                "UMT5ForConditionalGeneration" if umt5 else "T5ForConditionalGeneration"
            ],
            is_encoder_decoder=True,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            dropout_rate=self.dropout_rate,
            scale_decoder_outputs=self.tie_word_embeddings,
            dense_act_fn="gelu_new" if self.feed_forward_proj == "gated-gelu" else self.activation,
            is_gated_act=self.is_gated,
        )
        return hf


def _t5_1_0(d_model, num_heads, d_kv, d_ff, num_layers) -> T5Config:
    return T5Config(
        d_model=d_model,
        num_heads=num_heads,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=num_layers,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
    )


def _t5_1_1(d_model, num_heads, d_ff, num_layers) -> T5Config:
    return T5Config(
        d_model=d_model,
        num_heads=num_heads,
        d_kv=64,
        d_ff=d_ff,
        num_layers=num_layers,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )


_T5_1_1_SIZES = {
    "small": _t5_1_1(512, 6, 1024, 8),
    "base": _t5_1_1(768, 12, 2048, 12),
    "large": _t5_1_1(1024, 16, 2816, 24),
    "xl": _t5_1_1(2048, 32, 5120, 24),
    "xxl": _t5_1_1(4096, 64, 10240, 24),
}

PRESETS: dict[str, T5Config] = {
    "t5_1_0_small": _t5_1_0(512, 8, 64, 2048, 6),
    "t5_1_0_base": _t5_1_0(768, 12, 64, 3072, 12),
    "t5_1_0_large": _t5_1_0(1024, 16, 64, 4096, 24),
    "t5_1_0_3b": _t5_1_0(1024, 32, 128, 16384, 24),
    "t5_1_0_11b": _t5_1_0(1024, 128, 128, 65536, 24),
    **{f"t5_1_1_{size}": config for size, config in _T5_1_1_SIZES.items()},
    # The LM-adapted checkpoints (the paper's models) share T5.1.1's architecture.
    **{f"t5_1_1_lm100k_{size}": config for size, config in _T5_1_1_SIZES.items()},
    # mT5 (Xue et al. 2021): T5.1.1 with a 250,112-row vocabulary (google/mt5-*).
    **{
        f"mt5_{size}": dataclasses.replace(config, vocab_size=250112)
        for size, config in _T5_1_1_SIZES.items()
    },
    # UMT5 (Chung et al. 2023): mT5's shapes, a 256,384-row vocabulary, a relative position
    # table in every self-attention layer (google/umt5-*; there is no umt5-large).
    **{
        f"umt5_{size}": dataclasses.replace(config, vocab_size=256384, relative_bias_per_layer=True)
        for size, config in _T5_1_1_SIZES.items()
        if size != "large"
    },
    # ByT5 (Xue et al. 2022): T5.1.1 on UTF-8 bytes (384 ids, jaxprompt.data.vocabulary.ByteVocabulary),
    # a deep encoder and a shallow decoder (google/byt5-*).
    **{
        f"byt5_{size}": T5Config(
            vocab_size=384,
            d_model=d_model,
            num_heads=heads,
            d_kv=64,
            d_ff=d_ff,
            num_layers=layers,
            num_decoder_layers=layers // 3,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        )
        for size, (d_model, heads, d_ff, layers) in {
            "small": (1472, 6, 3584, 12),
            "base": (1536, 12, 3968, 18),
            "large": (1536, 16, 3840, 36),
            "xl": (2560, 32, 6720, 36),
            "xxl": (4672, 64, 12352, 36),
        }.items()
    },
}
