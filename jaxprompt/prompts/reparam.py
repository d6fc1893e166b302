"""Residual reparameterization of the prompt (Razdaibiedina et al., Findings of ACL 2023).

Each prompt row passes through one shared shallow MLP with a residual connection:

    effective[p] = prompt[p] + LayerNorm(W_up act(W_down prompt[p] + b_down) + b_up)

trained jointly with the prompt, as `trainable["prompt_encoder"]` beside
`trainable["prompt"]` (same masked optimizer, same checkpoints). Nothing downstream needs
it: at every save and evaluation the encoder is **folded** (`fold`) into the plain [P, H]
prompt it produces, so eval, predict, the bank, serve and the PEFT export read an ordinary
prompt. Defaults follow the authors' code: bottleneck 800, ReLU, layer norm, no dropout.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

ENCODERS = ("residual_mlp",)
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh}
LAYER_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class PromptEncoderConfig:
    kind: str = "residual_mlp"  # one of ENCODERS
    bottleneck: int = 800  # hidden width of the MLP (the authors' default)
    activation: str = "relu"  # one of ACTIVATIONS
    layer_norm: bool = True  # LayerNorm on the MLP's output, before the residual sum
    dropout: float = 0.0  # on the MLP's output during training
    # Initial layer-norm scale; 0 starts the residual branch at exactly zero, so the
    # effective prompt begins as the prompt's own init (class labels) (docs/convergence.md).
    norm_scale_init: float = 1.0

    def __post_init__(self):
        if self.kind not in ENCODERS:
            raise ValueError(f"prompt_encoder {self.kind!r}: one of {ENCODERS}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"prompt_encoder_activation {self.activation!r}: one of {sorted(ACTIVATIONS)}."
            )
        if self.bottleneck < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"prompt_encoder_bottleneck must be >= 1 (got {self.bottleneck}) "
                f"and dropout in [0, 1) (got {self.dropout})."
            )


def init_prompt_encoder(rng: jax.Array, d_model: int, config: PromptEncoderConfig) -> dict:
    """The MLP's params, float32: down [H, B], up [B, H] (uniform +-1/sqrt(fan_in), as a
    torch Linear), biases, and the layer norm's scale and bias."""
    down_key, up_key, down_bias, up_bias = jax.random.split(rng, 4)
    width = config.bottleneck

    def uniform(key, shape, fan_in):
        bound = 1.0 / jnp.sqrt(fan_in)
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound)

    params = {
        "down": {
            "kernel": uniform(down_key, (d_model, width), d_model),
            "bias": uniform(down_bias, (width,), d_model),
        },
        "up": {
            "kernel": uniform(up_key, (width, d_model), width),
            "bias": uniform(up_bias, (d_model,), width),
        },
    }
    if config.layer_norm:
        params["norm"] = {
            "scale": jnp.full((d_model,), config.norm_scale_init, jnp.float32),
            "bias": jnp.zeros((d_model,), jnp.float32),
        }
    return params


def encode_prompt(
    prompt: jax.Array,
    encoder: dict,
    config: PromptEncoderConfig,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """prompt [P, H] -> the effective prompt [P, H] (dropout only with a `dropout_rng`)."""
    x = prompt.astype(jnp.float32)
    hidden = ACTIVATIONS[config.activation](x @ encoder["down"]["kernel"] + encoder["down"]["bias"])
    out = hidden @ encoder["up"]["kernel"] + encoder["up"]["bias"]
    if "norm" in encoder:
        mean = out.mean(axis=-1, keepdims=True)
        variance = jnp.square(out - mean).mean(axis=-1, keepdims=True)
        out = (out - mean) * jax.lax.rsqrt(variance + LAYER_NORM_EPSILON)
        out = out * encoder["norm"]["scale"] + encoder["norm"]["bias"]
    if dropout_rng is not None and config.dropout > 0:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - config.dropout, out.shape)
        out = jnp.where(keep, out / (1.0 - config.dropout), 0.0)
    return x + out


def effective_prompt(
    trainable: dict, config: PromptEncoderConfig | None, dropout_rng: jax.Array | None = None
):
    """The prompt the model sees: trainable["prompt"], through the encoder if there is one."""
    prompt = trainable.get("prompt")
    if prompt is None or "prompt_encoder" not in trainable:
        return prompt
    if config is None:
        raise ValueError(
            "The trainable tree holds a prompt_encoder but no "
            "PromptEncoderConfig was given (StepConfig.prompt_encoder)."
        )
    return encode_prompt(prompt, trainable["prompt_encoder"], config, dropout_rng)


def fold(trainable: dict, config: PromptEncoderConfig | None) -> dict:
    """The trainable tree without its encoder: {"prompt": effective prompt, ...}."""
    if "prompt_encoder" not in trainable:
        return trainable
    folded = {k: v for k, v in trainable.items() if k != "prompt_encoder"}
    folded["prompt"] = effective_prompt(trainable, config)
    return folded


__all__ = [
    "ENCODERS",
    "PromptEncoderConfig",
    "effective_prompt",
    "encode_prompt",
    "fold",
    "init_prompt_encoder",
]
