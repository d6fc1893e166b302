"""Convert T5 params between per-layer (`layers_0`, `layers_1`, ...) and scanned (`layers`) trees.

Checkpoints store layers one by one (t5x, transformers); `T5Config(scan_layers=True)` runs
each stack under nn.scan, whose params carry a leading layer axis [L, ...].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxprompt.config import T5Config


def _num_layers(config: T5Config, stack: str) -> int:
    return config.num_layers if stack == "encoder" else config.num_decoder_layers


def stack_layers(params: dict, config: T5Config) -> dict:
    """Per-layer params -> scanned params (`layers` leaves [L, ...])."""
    out = dict(params)
    for stack in ("encoder", "decoder"):
        tree = dict(params[stack])
        layers = [tree.pop(f"layers_{i}") for i in range(_num_layers(config, stack))]
        tree["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *layers)
        out[stack] = tree
    return out


def unstack_layers(params: dict, config: T5Config) -> dict:
    """Scanned params -> per-layer params (`layers_0` ... `layers_{L-1}`)."""
    out = dict(params)
    for stack in ("encoder", "decoder"):
        tree = dict(params[stack])
        layers = tree.pop("layers")
        for i in range(_num_layers(config, stack)):
            tree[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], layers)
        out[stack] = tree
    return out
