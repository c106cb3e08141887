"""The seed's LSTM recommender: item embedding -> LSTM -> dense layer over the items.

The dense layer (kernel and bias) is the output item table: `encode` appends a constant 1 to each
hidden state and `item_table` appends the bias to each item's kernel column, so h . [W_i, b_i] =
W_i h + b_i and every next-item loss applies: `loss=ce` (softmax over items) or `loss=bce`
(sigmoid + binary cross-entropy with sampled negatives).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.recurrent import RecurrentEncoder
from recattn_jax.models import register_model


class LSTMRec(nnx.Module):
    def __init__(
        self, num_items: int, dim: int, dropout: float, cell: str, *, rngs: nnx.Rngs, num_event_types: int = 0
    ):
        self.items = nnx.Embed(num_items + 1, dim, rngs=rngs)
        self.encoder = RecurrentEncoder(dim, dim, cell, rngs=rngs)
        self.dense = nnx.Linear(dim, num_items + 1, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # None without event types

    def encode(
        self, seq: Int[Array, "B L"], *, events: Int[Array, "B L"] | None = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        x = self.dropout(add_events(self.items(seq), self.events, events), deterministic=rngs is None, rngs=rngs)
        h = self.dropout(self.encoder(x, seq), deterministic=rngs is None, rngs=rngs)
        return jnp.concatenate([h, jnp.ones_like(h[..., :1])], axis=-1)  # the 1 multiplies the bias

    def item_table(self) -> Float[Array, "I D"]:
        return jnp.concatenate([self.dense.kernel[...].T, self.dense.bias[...][:, None]], axis=-1)

    def user_representation(
        self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.encode(seq, events=events)[:, -1]  # right-aligned: the newest item sits last


@register_model("lstm", events=True)
def build_lstm(config, num_items: int, *, backend: str, rngs: nnx.Rngs, num_event_types: int = 0) -> LSTMRec:
    del backend
    return LSTMRec(num_items, config.hidden, config.dropout, "lstm", rngs=rngs, num_event_types=num_event_types)
