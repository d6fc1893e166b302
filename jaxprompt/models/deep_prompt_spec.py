"""What the model accepts as a deep prompt (prefix tuning): shapes, checks, logical axes.

A deep prompt is the trainable subtree "deep_prompt" of float32 arrays:
  encoder_key, encoder_value  [L_enc, P, K]  prepended to every encoder self-attention;
  decoder_key, decoder_value  [L_dec, P, K]  optional, decoder self-attention;
with K = num_heads * d_kv. Logical axes ("layers", "prompt", "joined_kv"). Making,
saving and loading one is jaxprompt.prompts.deep's job.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxprompt.config import T5Config

DEEP_PROMPT_AXES = ("layers", "prompt", "joined_kv")


class DeepPromptError(ValueError):
    """A deep prompt whose keys or shapes do not fit the model."""


def expected_shapes(config: T5Config, length: int, decoder: bool) -> dict[str, tuple]:
    inner = config.num_heads * config.d_kv
    shapes = {
        "encoder_key": (config.num_layers, length, inner),
        "encoder_value": (config.num_layers, length, inner),
    }
    if decoder:
        shapes.update(
            decoder_key=(config.num_decoder_layers, length, inner),
            decoder_value=(config.num_decoder_layers, length, inner),
        )
    return shapes


def check_deep_prompt(deep_prompt: dict, config: T5Config) -> None:
    """Raises DeepPromptError naming the key and the expected shape."""
    decoder = "decoder_key" in deep_prompt or "decoder_value" in deep_prompt
    encoder_key_shape = np.shape(deep_prompt.get("encoder_key", ()))
    length = encoder_key_shape[1] if len(encoder_key_shape) == 3 else 0
    expected = expected_shapes(config, length, decoder)
    if set(deep_prompt) != set(expected):
        raise DeepPromptError(f"A deep prompt holds {sorted(expected)}; got {sorted(deep_prompt)}.")
    for name, shape in expected.items():
        if tuple(np.shape(deep_prompt[name])) != shape:
            raise DeepPromptError(
                f"deep_prompt[{name!r}] has shape {tuple(np.shape(deep_prompt[name]))}; this "
                f"model needs {shape} ([layers, P, num_heads * d_kv])."
            )


def layer_prefixes(deep_prompt: dict | None, stack: str) -> dict | None:
    """{"key", "value"} [L, P, K] of one stack ("encoder" or "decoder"), or None."""
    if deep_prompt is None or f"{stack}_key" not in deep_prompt:
        return None
    return {"key": deep_prompt[f"{stack}_key"], "value": deep_prompt[f"{stack}_value"]}


def deep_prompt_axes(deep_prompt: dict) -> dict:
    """PartitionSpecs of every leaf of a deep prompt."""
    return {name: jax.sharding.PartitionSpec(*DEEP_PROMPT_AXES) for name in deep_prompt}
