"""jaxprompt.models.dots: bfloat16 products accumulated in float32, forward and backward, and
what XLA:CPU makes of them (the bfloat16 operands reach the dot; no float32 copy of a weight)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprompt.models.dots import einsum

SPECS = {"...i,io->...o": ((2, 5, 16), (16, 8)), "...h,vh->...v": ((3, 16), (24, 16))}


@pytest.mark.parametrize("spec", SPECS)
def test_bfloat16_einsum_and_its_gradients_match_float32(spec):
    a_shape, b_shape = SPECS[spec]
    a = jax.random.normal(jax.random.key(0), a_shape)
    b = jax.random.normal(jax.random.key(1), b_shape)
    w = jax.random.normal(jax.random.key(2), jnp.einsum(spec, a, b).shape)
    loss = lambda a, b, fn: jnp.sum(fn(a, b).astype(jnp.float32) * w)
    ours = jax.grad(loss, argnums=(0, 1))(
        a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), lambda x, y: einsum(spec, x, y)
    )
    # Reference: float32 autodiff of the same product on the bfloat16-rounded operands.
    rounded = lambda x: x.astype(jnp.bfloat16).astype(jnp.float32)
    ref = jax.grad(loss, argnums=(0, 1))(
        rounded(a), rounded(b), lambda x, y: jnp.einsum(spec, x, y)
    )
    for got, want in zip(ours, ref):
        assert got.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-2, atol=2e-2)
    out = einsum(spec, a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(out, np.float32), jnp.einsum(spec, rounded(a), rounded(b)), rtol=1e-2, atol=1e-2
    )
    assert einsum(spec, a, b).dtype == jnp.float32  # float32 stays plain einsum
    np.testing.assert_array_equal(einsum(spec, a, b), jnp.einsum(spec, a, b))


def test_the_dots_take_bfloat16_operands_forward_and_backward():
    """Forward and input gradient of a bf16 projection: every dot is bf16 x bf16 -> f32,
    and (compiled for this CPU) no float32 copy of the weight is made for a dot."""
    x = jnp.ones((64, 32), jnp.bfloat16)
    kernel = jnp.ones((32, 48), jnp.bfloat16)
    step = jax.jit(
        jax.value_and_grad(
            lambda x: jnp.sum(einsum("...i,io->...o", x, kernel).astype(jnp.float32))
        )
    )
    lowered = step.lower(x).as_text()
    dots = re.findall(r"stablehlo.dot_general.*?: \((tensor<[^)]*)\) -> (tensor<[^>]*>)", lowered)
    assert len(dots) == 2, lowered  # the forward product and the input gradient
    for operands, result in dots:
        assert operands.count("bf16") == 2 and "f32" in result, (operands, result)
    compiled = step.lower(x).compile().as_text()
    assert not re.search(r"f32\[32,48\]\S* convert\(", compiled), "the weight was upcast"
