"""Scores of candidate items for a batch of histories, for any registered model.

A model either defines `score_all` / `score_items` itself (e.g. target attention, where the user
vector depends on the candidate) or provides `user_representation` and `item_table`, scored by dot product.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def score_all(model, seq: Int[Array, "B L"]) -> Float[Array, "B I"]:
    """Scores of every item index 0..I (index 0, padding, included; callers mask it)."""
    if hasattr(model, "score_all"):
        return model.score_all(seq)
    return model.user_representation(seq) @ model.item_table().T


def score_items(model, seq: Int[Array, "B L"], items: Int[Array, "B C"]) -> Float[Array, "B C"]:
    if hasattr(model, "score_items"):
        return model.score_items(seq, items)
    user = model.user_representation(seq)
    return jnp.einsum("bd,bcd->bc", user, model.item_table()[items])
