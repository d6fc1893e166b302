"""The model's matrix products: in the compute dtype, accumulated in float32.

XLA:CPU runs a dot of bfloat16 operands with a float32 result on the CPU's matrix units
(AMX on a recent Xeon: about 5x its float32 rate), but it upcasts a bfloat16 x bfloat16 ->
bfloat16 dot to a float32 dot first (docs/measurements.md shows the HLO). `einsum` asks for
the float32 result and rounds it to the output dtype, forward and backward: its VJP rounds
the cotangent to the operands' dtype, so the transposed dots are bfloat16 x bfloat16 ->
float32 as well. On TPU and GPU the result is what a bfloat16 dot gives there (float32
accumulation, rounded once). In float32 it is plain `jnp.einsum`.

The projections (`Dense`, `Embed.attend`) use it; attention's batched dots do not: XLA:CPU
runs some of their transposes in its generic dot kernel, which has no bfloat16 x bfloat16 ->
float32 ("Unsupported element type for DotThunk").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def einsum(spec: str, a: jax.Array, b: jax.Array, out_dtype=None) -> jax.Array:
    """`jnp.einsum(spec, a, b)` of two operands of one dtype, as `out_dtype` (default:
    theirs). Every index of an operand appears in the other operand or in the output."""
    out_dtype = jnp.dtype(out_dtype or a.dtype)
    if a.dtype == jnp.float32:
        return jnp.einsum(spec, a, b).astype(out_dtype)
    return _accumulated(spec, out_dtype, a, b)


def _products(spec: str) -> tuple[str, str, str]:
    inputs, out = spec.replace(" ", "").split("->")
    left, right = inputs.split(",")
    return left, right, out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _accumulated(spec, out_dtype, a, b):
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(out_dtype)


def _forward(spec, out_dtype, a, b):
    return _accumulated(spec, out_dtype, a, b), (a, b)


def _backward(spec, out_dtype, residuals, cotangent):
    a, b = residuals
    left, right, out = _products(spec)
    g = cotangent.astype(a.dtype)
    da = jnp.einsum(f"{out},{right}->{left}", g, b, preferred_element_type=jnp.float32)
    db = jnp.einsum(f"{left},{out}->{right}", a, g, preferred_element_type=jnp.float32)
    return da.astype(a.dtype), db.astype(b.dtype)


_accumulated.defvjp(_forward, _backward)

__all__ = ["einsum"]
