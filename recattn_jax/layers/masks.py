"""Key bounds of left-padded item sequences (0 = padding) for the attention ops."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Int


def left_padded_bounds(seq: Int[Array, "B L"]) -> tuple[Int[Array, " B"], Int[Array, " B"]]:
    """kv_start, kv_end of sequences whose items are right-aligned: valid keys are [L - len, L)."""
    length = jnp.sum(seq != 0, axis=-1).astype(jnp.int32)
    return seq.shape[-1] - length, jnp.full_like(length, seq.shape[-1])


def item_mask(seq: Int[Array, "B L"]) -> Bool[Array, "B L"]:
    return seq != 0
