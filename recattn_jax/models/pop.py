"""Popularity: every user gets the most frequent training items (their own history is masked by
the evaluation). No trainable parameters: "training" counts item occurrences in the training rows.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.masks import left_padded_bounds
from recattn_jax.models import register_model


class ItemCounts(nnx.Variable):
    """Not a Param: the optimizer never touches it, the train step updates it in place."""


class Pop(nnx.Module):
    def __init__(self, num_items: int):
        self.counts = ItemCounts(jnp.zeros((num_items + 1,), jnp.float32))

    def train_loss(self, batch, loss_fn, rng, rngs):
        """Adds the batch's items to the counts (each training row holds its user's training items:
        the first input, then the targets). Every epoch adds the same counts, which keeps the order."""
        del loss_fn, rng, rngs
        inputs, targets = batch["inputs"], batch["targets"]
        first = jnp.take_along_axis(inputs, left_padded_bounds(inputs)[0][:, None] % inputs.shape[1], axis=1)
        items = jnp.concatenate([first, targets], axis=1).reshape(-1)
        self.counts[...] = self.counts[...].at[items].add((items != 0).astype(jnp.float32))
        return jnp.zeros((), jnp.float32)

    def score_all(self, seq: Int[Array, "B L"]) -> Float[Array, "B I"]:
        return jnp.broadcast_to(self.counts[...], (seq.shape[0], self.counts.shape[0]))

    def score_items(self, seq: Int[Array, "B L"], items: Int[Array, "B C"]) -> Float[Array, "B C"]:
        return self.counts[...][items]


@register_model("pop")
def build_pop(config, num_items: int, *, backend: str, rngs: nnx.Rngs) -> Pop:
    del config, backend, rngs
    return Pop(num_items)
