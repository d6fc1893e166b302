"""The model interface: what the trainer, scoring, decoding, the prompt bank, the server,
the planner and the exporters ask of a frozen model, whatever its family.

A family is one module plus an entry in FAMILIES, found from the config's type:

    family = family_of(config)
    family.target_logits(config, params, inputs, targets, prompt, prompt_mask, prompt_mode,
                         deep_prompt)                        -> [B, S, V] float32
    family.score(config, params, inputs, candidates, ...)    -> [B, C] log-likelihoods
    family.greedy(config, params, inputs, max_length, ...)   -> [B, max_length] token ids
    family.param_shapes(config) / param_axes(config) / init_params(config, rng)
    family.model_layout(params, config)   checkpoint layout -> the module's (scan stacking)
    family.checkpoint_layout(params, config)   the inverse
    family.embedding_scale(config)   what a token's embedding row is multiplied by (Gemma)
    family.peft_task_type, family.supports_deep_prompt

Inputs [B, T] and targets [B, S] are EOS-terminated and 0-padded on the right (the
pipeline's batches); candidates [B, C, S] likewise. The token embedding table is
`params["token_embedder"]["embedding"]` [V, H] in every family (prompt inits read it).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from jaxprompt.config import T5Config
from jaxprompt.decoder_config import DecoderConfig


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    config_type: type
    target_logits: Callable
    score: Callable
    greedy: Callable
    param_shapes: Callable
    param_axes: Callable
    init_params: Callable
    model_layout: Callable
    checkpoint_layout: Callable
    supports_deep_prompt: bool
    peft_task_type: str  # PEFT's task_type for a prompt-tuning adapter of this family
    embedding_scale: Callable  # config -> what token embeddings are multiplied by


def _t5_family() -> Family:
    from jaxprompt.models import seq2seq, t5
    from jaxprompt.models.scan import stack_layers, unstack_layers

    def model_layout(params, config):
        if config.scan_layers and "layers_0" in params["encoder"]:
            return stack_layers(params, config)
        return params

    def checkpoint_layout(params, config):
        return unstack_layers(params, config) if "layers" in params["encoder"] else params

    return Family(
        "t5",
        T5Config,
        seq2seq.target_logits,
        seq2seq.score,
        seq2seq.greedy,
        t5.param_shapes,
        t5.param_axes,
        t5.init_params,
        model_layout,
        checkpoint_layout,
        True,
        "SEQ_2_SEQ_LM",  # without it PEFT silently ignores a T5's prompt
        lambda config: 1.0,
    )


def _decoder_family() -> Family:
    from jaxprompt.models import causal, decoder

    def model_layout(params, config):
        inner = params["decoder"]
        if config.scan_layers and "layers_0" in inner:
            layers = [inner[f"layers_{i}"] for i in range(config.num_layers)]
            stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *layers)
            rest = {k: v for k, v in inner.items() if not k.startswith("layers_")}
            return {**params, "decoder": {**rest, "layers": stacked}}
        return params

    def checkpoint_layout(params, config):
        inner = params["decoder"]
        if "layers" not in inner:
            return params
        rest = {k: v for k, v in inner.items() if k != "layers"}
        for i in range(config.num_layers):
            rest[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], inner["layers"])
        return {**params, "decoder": rest}

    return Family(
        "decoder",
        DecoderConfig,
        causal.target_logits,
        causal.score,
        causal.greedy,
        decoder.param_shapes,
        decoder.param_axes,
        decoder.init_params,
        model_layout,
        checkpoint_layout,
        False,
        "CAUSAL_LM",
        lambda config: config.d_model**0.5 if config.scale_embeddings else 1.0,
    )


FAMILIES: dict[type, Callable[[], Family]] = {T5Config: _t5_family, DecoderConfig: _decoder_family}


@functools.lru_cache(maxsize=None)
def _family(config_type: type) -> Family:
    return FAMILIES[config_type]()


def family_of(config) -> Family:
    """The Family of a model config (T5Config or DecoderConfig)."""
    if type(config) not in FAMILIES:
        raise TypeError(
            f"{type(config).__name__} is not a model config; expected one of "
            f"{', '.join(t.__name__ for t in FAMILIES)}."
        )
    return _family(type(config))


def config_from_architecture(architecture: dict):
    """The config recorded in a prompt directory or run (`config.architecture()`): a
    DecoderConfig where it names a decoder-only model_type, else a T5Config."""
    from jaxprompt.decoder_config import DECODER_MODEL_TYPES

    if architecture.get("model_type") in DECODER_MODEL_TYPES:
        return DecoderConfig(**architecture)
    return T5Config(**architecture)
