"""Scores of candidate items for a batch of histories, for any registered model.

A model either defines `score_all` / `score_items` itself (e.g. target attention, where the user
vector depends on the candidate) or provides `user_representation` and `item_table`, scored by dot product.
Models with `needs_users` (user side features) also take the user indices; `events` (the history's
event types, data.event_col) go to models built with event types only.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def score_all(
    model, seq: Int[Array, "B L"], users: Int[Array, " B"] | None = None, events: Int[Array, "B L"] | None = None
) -> Float[Array, "B I"]:
    """Scores of every item index 0..I (index 0, padding, included; callers mask it).

    `users` (user indices) matter only to models with `needs_users` (user side features)."""
    if hasattr(model, "score_all"):
        return model.score_all(seq, *_users_of(model, users), **event_kwargs(events))
    return user_vectors(model, seq, users, events) @ model.item_table().T


def score_items(
    model,
    seq: Int[Array, "B L"],
    items: Int[Array, "B C"],
    users: Int[Array, " B"] | None = None,
    events: Int[Array, "B L"] | None = None,
) -> Float[Array, "B C"]:
    if hasattr(model, "score_items"):
        return model.score_items(seq, items, *_users_of(model, users), **event_kwargs(events))
    user = user_vectors(model, seq, users, events)
    return jnp.einsum("bd,bcd->bc", user, model.item_table()[items])


def user_vectors(model, seq, users, events=None) -> Float[Array, "B D"]:
    """The user representation of a dot-product model, with user side features where it has them."""
    return model.user_representation(seq, *_users_of(model, users), **event_kwargs(events))


def _users_of(model, users) -> tuple:
    """(users,) for a model that needs them, else ()."""
    if not getattr(model, "needs_users", False):
        return ()
    if users is None:
        raise ValueError("this model adds user features: pass the user indices")
    return (users,)


def event_kwargs(events) -> dict:
    """`events=` for a call, or nothing: models without an event embedding (pop, bpr_mf) take no such argument."""
    return {} if events is None else {"events": events}
