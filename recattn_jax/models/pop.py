"""Popularity: every user gets the most frequent training items (their own history is masked by
the evaluation). No trainable parameters: "training" counts item occurrences in the training rows.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.item_rows import ITEM_ROWS
from recattn_jax.layers.masks import left_padded_bounds
from recattn_jax.models import register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, UserOffset, Users, refuse_events


class ItemCounts(nnx.Variable):
    """Not a Param: the optimizer never touches it, the train step updates it in place."""


class Pop(nnx.Module):
    kind = ModelKind.OWN_SCORING

    def __init__(self, num_items: int):
        self.counts = ItemCounts(jnp.zeros((num_items + 1,), jnp.float32), **ITEM_ROWS)

    def train_loss(self, batch, loss_fn, rng, rngs, *, user_offset: UserOffset = None):
        """Adds the batch's items to the counts (each training row holds its user's training items:
        the first input, then the targets). Every epoch adds the same counts, which keeps the order."""
        del loss_fn, rng, rngs, user_offset  # pop takes no user features (the registry refuses them)
        inputs, targets = batch["inputs"], batch["targets"]
        first = jnp.take_along_axis(inputs, left_padded_bounds(inputs)[0][:, None] % inputs.shape[1], axis=1)
        items = jnp.concatenate([first, targets], axis=1).reshape(-1)
        self.counts[...] = self.counts[...].at[items].add((items != 0).astype(jnp.float32))
        return jnp.zeros((), jnp.float32)

    def score_all(
        self, seq: Seq, *, events: Events = None, users: Users = None, user_offset: UserOffset = None
    ) -> Float[Array, "B I"]:
        refuse_events(events, "pop")
        del users, user_offset  # the same ranking for every user
        return jnp.broadcast_to(self.counts[...], (seq.shape[0], self.counts.shape[0]))

    def score_items(
        self,
        seq: Seq,
        items: Int[Array, "B C"],
        *,
        events: Events = None,
        users: Users = None,
        user_offset: UserOffset = None,
    ) -> Float[Array, "B C"]:
        refuse_events(events, "pop")
        del users, user_offset  # the same ranking for every user
        return self.counts[...][items]


@register_model("pop", kind=ModelKind.OWN_SCORING)
def build_pop(config, num_items: int, *, backend: str, rngs: nnx.Rngs) -> Pop:
    del config, backend, rngs
    return Pop(num_items)
