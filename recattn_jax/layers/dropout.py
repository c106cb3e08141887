"""Inverted dropout whose keep mask comes from 16-bit random draws of the non-partitionable Threefry.

Why not nnx.Dropout: it draws one fp32 uniform per element with JAX's default (partitionable) Threefry,
which on a 2-core CPU cost ~0.25 s of a 0.75 s SASRec training step (7 masks of [128, 200, 50]). The draws,
the threshold and the scale are kernels/dropout_bits.py's (shared with the attention op's dropout); the
expectation is exact.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from kernels.dropout_bits import LEVELS, drop_threshold, keep_scale, kept


class Dropout(nnx.Module):
    """Drop each element with probability `rate` (to 16 bits) when `deterministic` is False."""

    def __init__(self, rate: float):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"dropout rate {rate} is not in [0, 1]")
        self.rate = rate
        self.threshold = drop_threshold(rate)  # draws below it are dropped

    def __call__(
        self, x: Float[Array, "..."], *, deterministic: bool = False, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "..."]:
        if deterministic or self.threshold == 0:
            return x
        if self.threshold >= LEVELS:
            return jnp.zeros_like(x)
        if rngs is None:
            raise ValueError("Dropout needs rngs (with a 'dropout' stream) when not deterministic")
        # under a mesh XLA generates the whole mask on each device, which is cheap next to the step at these sizes
        keep = kept(rngs.dropout(), x.shape, self.threshold)
        return jnp.where(keep, x * keep_scale(self.threshold), 0).astype(x.dtype)
