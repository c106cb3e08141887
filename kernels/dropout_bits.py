"""16-bit dropout draws, shared by recattn_jax's Dropout layer and the attention op's dropout on its weights.

Two 16-bit draws per 32-bit output of the non-partitionable Threefry (its sequential counter layout) cost ~6x
less on a 2-core CPU than nnx.Dropout's one fp32 uniform per element (benchmarks/RESULTS.md). An element is
kept when its draw is at least round(rate * 65536), so the keep probability is within 8e-6 of 1 - rate, and
kept values are scaled by its exact inverse: the expectation is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool

LEVELS = 1 << 16


def drop_threshold(rate: float) -> int:
    """Draws below this are dropped."""
    return round(rate * LEVELS)


def keep_scale(threshold: int) -> float:
    """1 / the keep probability of `threshold` (< LEVELS)."""
    return LEVELS / (LEVELS - threshold)


def kept(key: Array, shape: tuple[int, ...], threshold: int) -> Bool[Array, "..."]:
    """Which elements survive: one 16-bit draw each, at least `threshold`."""
    with jax.threefry_partitionable(False):
        bits = jax.random.bits(key, shape, jnp.uint16)
    return bits >= jnp.uint16(threshold)
