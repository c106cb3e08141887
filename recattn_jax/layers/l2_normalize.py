"""L2 normalisation of vectors, for cosine scores (unit user states against unit item rows)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

_MIN_SQUARED_NORM = 1e-12  # zero rows (padding, mesh padding) stay zero, with a finite gradient


def l2_normalize(x: Float[Array, "... D"]) -> Float[Array, "... D"]:
    """x / |x| over the last axis; a zero vector stays zero (the norm is floored before the square root,
    so its gradient is finite: no 0/0 at the padding row)."""
    squared = jnp.sum(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return (x * jax.lax.rsqrt(jnp.maximum(squared, _MIN_SQUARED_NORM))).astype(x.dtype)
