"""The seed's LSTM recommender: item embedding -> LSTM -> dense layer over the items.

The dense layer (kernel and bias) is the output item table: `encode` appends a constant 1 to each
hidden state and `item_table` appends the bias to each item's kernel column, so h . [W_i, b_i] =
W_i h + b_i and every next-item loss applies: `loss=ce` (softmax over items) or `loss=bce`
(sigmoid + binary cross-entropy with sampled negatives). With `model.item_features=tfidf` the input
embedding and the dense layer's item columns (W_i) are each fused with the items' side features.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import ItemTable
from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.recurrent import RecurrentEncoder
from recattn_jax.models import field_fusion, item_table, register_model


class LSTMRec(nnx.Module):
    def __init__(
        self,
        items: ItemTable,
        dropout: float,
        cell: str,
        *,
        rngs: nnx.Rngs,
        output_fusion: nnx.Module | None = None,
        num_event_types: int = 0,
    ):
        rows, dim = items.table.shape
        self.items = items
        self.encoder = RecurrentEncoder(dim, dim, cell, rngs=rngs)
        self.dense = nnx.Linear(dim, rows, rngs=rngs)
        self.output_fusion = output_fusion  # fuses the kernel's item columns with side features, or None
        self.dropout = Dropout(dropout)
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # None without event types

    def encode(
        self, seq: Int[Array, "B L"], *, events: Int[Array, "B L"] | None = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        x = self.dropout(add_events(self.items(seq), self.events, events), deterministic=rngs is None, rngs=rngs)
        h = self.dropout(self.encoder(x, seq), deterministic=rngs is None, rngs=rngs)
        return jnp.concatenate([h, jnp.ones_like(h[..., :1])], axis=-1)  # the 1 multiplies the bias

    def item_table(self) -> Float[Array, "I D"]:
        weights = self.dense.kernel[...].T  # [I+1, D]: W_i per item
        if self.output_fusion is not None:
            weights = self.output_fusion(weights)
        return jnp.concatenate([weights, self.dense.bias[...][:, None]], axis=-1)

    def user_representation(
        self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.encode(seq, events=events)[:, -1]  # right-aligned: the newest item sits last


@register_model("lstm", item_features=True, user_features=True, events=True)
def build_lstm(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> LSTMRec:
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)  # nnx.Embed's default
    return LSTMRec(
        item_table(config, num_items, init, backend=backend, rngs=rngs, features=features),
        config.dropout,
        "lstm",
        rngs=rngs,
        output_fusion=field_fusion(config, num_items + 1, backend=backend, rngs=rngs, features=features),
        num_event_types=num_event_types,
    )
