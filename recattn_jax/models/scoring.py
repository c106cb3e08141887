"""Scores of candidate items for a batch of histories, and the training loss, for any registered model.

Dispatched on the model's declared kind (models/interface.py): an OWN_SCORING model scores candidates
itself (e.g. target attention, where the user vector depends on the candidate); every other model is
scored by user_representation · item_table. `users` (user indices) and `events` (the history's event
types, data.event_col) are passed to every model, which reads them only where it has use for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.models.interface import ModelKind, model_kind


def score_all(
    model, seq: Int[Array, "B L"], users: Int[Array, " B"] | None = None, events: Int[Array, "B L"] | None = None
) -> Float[Array, "B I"]:
    """Scores of every item index 0..I (index 0, padding, included; callers mask it)."""
    if model_kind(model) is ModelKind.OWN_SCORING:
        return model.score_all(seq, events=events, users=users)
    return user_vectors(model, seq, users, events) @ model.item_table().T


def score_items(
    model,
    seq: Int[Array, "B L"],
    items: Int[Array, "B C"],
    users: Int[Array, " B"] | None = None,
    events: Int[Array, "B L"] | None = None,
) -> Float[Array, "B C"]:
    if model_kind(model) is ModelKind.OWN_SCORING:
        return model.score_items(seq, items, events=events, users=users)
    user = user_vectors(model, seq, users, events)
    return jnp.einsum("bd,bcd->bc", user, model.item_table()[items])


def user_vectors(model, seq, users=None, events=None) -> Float[Array, "B D"]:
    """The user representation of a model scored by dot product (not OWN_SCORING)."""
    return model.user_representation(seq, events=events, users=users)


def training_loss(
    model, batch: Mapping[str, Array], loss_fn: Callable, rng: Array, rngs: nnx.Rngs | None
) -> Float[Array, ""]:
    """The model's training loss on `batch`: the next-item `loss_fn` over a DOT_PRODUCT model's encoded
    states against its item table (with the batch's packed `positions` and `seen` items where given), or
    the model's own `train_loss`."""
    if model_kind(model) is not ModelKind.DOT_PRODUCT:  # its own objective (masked items, pairs, ...)
        return model.train_loss(batch, loss_fn, rng, rngs)
    hidden = model.encode(batch["inputs"], events=batch.get("events"), users=batch.get("users"), rngs=rngs)
    packed = {k: batch[k] for k in ("positions", "seen") if k in batch}  # see train/epoch.py
    return loss_fn(hidden, model.item_table(), batch["targets"], rng, **packed)
