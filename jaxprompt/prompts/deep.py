"""Deep prompts (prefix tuning, P-tuning v2): trainable keys and values in every layer.

Making (init), saving and loading them; the shapes the model accepts, their checks and
logical axes live in jaxprompt.models.deep_prompt_spec (re-exported here).

A deep prompt is a pure pytree of float32 arrays, the trainable subtree "deep_prompt":
  encoder_key, encoder_value  [L_enc, P, K]  prepended to every encoder self-attention;
  decoder_key, decoder_value  [L_dec, P, K]  optional, decoder self-attention;
with K = num_heads * d_kv. Prefix positions are visible to every query, get no relative
position bias and are never cached (the KV cache holds real tokens only). Logical axes
("layers", "prompt", "joined_kv"): the default rules shard K over the model axis, like
the frozen key/value kernels.

Hugging Face PEFT's PREFIX_TUNING cannot hold these for T5: PEFT passes its prefixes as
`past_key_values`, which transformers' T5 gives to the decoder only (the encoder has no
past), and it places them at relative positions before the decoder's tokens. So a deep
prompt stays a jaxprompt checkpoint (`deep_prompt.npz`); the README says so.
"""

from __future__ import annotations

import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.models.layers import RMSNorm
from jaxprompt.models.deep_prompt_spec import (
    DEEP_PROMPT_AXES,
    DeepPromptError,
    check_deep_prompt,
    expected_shapes,
    deep_prompt_axes,
)
from jaxprompt.models.scan import unstack_layers
from jaxprompt.prompts.init import sample_rows

DEEP_PROMPT_FILE = "deep_prompt.npz"


def init_deep_prompt(
    rng: jax.Array,
    params: dict,
    config: T5Config,
    length: int,
    decoder: bool = False,
    sample_top_k: int = 5000,
) -> dict:
    """Keys and values of P sampled vocabulary tokens, through each frozen layer's projections.

    Each layer's prefix starts as the key and value that layer would compute for the
    embeddings of P frequent tokens (after its pre-attention norm), so it begins in the
    range the frozen attention expects. Returns float32 arrays (see `expected_shapes`).
    """
    if not isinstance(length, int) or length < 1:
        raise DeepPromptError(f"Deep prompt length must be a positive integer, got {length!r}.")
    rows = sample_rows(rng, params["token_embedder"]["embedding"], length, sample_top_k)  # [P, H]
    if "layers" in params["encoder"]:  # scanned: per-layer views of the stacked kernels
        params = unstack_layers(params, config)

    def project(stack: str, num_layers: int, norm: str, attention: str) -> dict:
        keys, values = [], []
        for layer in (params[stack][f"layers_{i}"] for i in range(num_layers)):
            h = RMSNorm(config.layer_norm_epsilon).apply(
                {"params": {"scale": layer[norm]["scale"].astype(jnp.float32)}}, rows
            )
            keys.append(h @ layer[attention]["key"]["kernel"].astype(jnp.float32))
            values.append(h @ layer[attention]["value"]["kernel"].astype(jnp.float32))
        return {f"{stack}_key": jnp.stack(keys), f"{stack}_value": jnp.stack(values)}

    deep_prompt = project("encoder", config.num_layers, "pre_attention_layer_norm", "attention")
    if decoder:
        deep_prompt.update(
            project(
                "decoder",
                config.num_decoder_layers,
                "pre_self_attention_layer_norm",
                "self_attention",
            )
        )
    check_deep_prompt(deep_prompt, config)
    return deep_prompt


def save_deep_prompt(path: str, deep_prompt: dict) -> None:
    """Writes the arrays to one .npz (float32)."""
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in deep_prompt.items()})


def load_deep_prompt(path: str, config: T5Config | None = None) -> dict:
    """Reads a `deep_prompt.npz`; with `config`, checks it fits that model."""
    from jaxprompt.checkpoints.errors import PARSE_ERRORS

    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise DeepPromptError(f"{path}: a single array, not a deep prompt .npz.")
            deep_prompt = {k: np.asarray(data[k]) for k in data.files}
    except DeepPromptError:
        raise
    except PARSE_ERRORS + (zipfile.BadZipFile,) as e:
        raise DeepPromptError(
            f"{path}: not a readable deep prompt .npz ({type(e).__name__}: {str(e)[:200]})."
        ) from None
    if config is not None:
        try:
            check_deep_prompt(deep_prompt, config)
        except DeepPromptError as e:
            raise DeepPromptError(f"{path}: {e}") from e
    return deep_prompt


__all__ = [
    "DEEP_PROMPT_AXES",
    "DEEP_PROMPT_FILE",
    "DeepPromptError",
    "check_deep_prompt",
    "expected_shapes",
    "init_deep_prompt",
    "load_deep_prompt",
    "deep_prompt_axes",
    "save_deep_prompt",
]
