"""Recurrent recommenders: item embedding -> recurrent encoder (LSTM or GRU cell) -> scores against an
output item table, next item at every position, with the configured loss (`loss=ce`: softmax over the
items; `loss=bce`/`gbce`: sampled negatives).

Registered as
- `lstm`, the source article's LSTM recommender: its output layer is a dense layer over the items, W_i h + b_i; the
  per-item bias b is a column of `item_table` matched by a constant 1 appended to each hidden state.
- `gru4rec` (Hidasi et al. 2016): a GRU scored against an output item embedding table, without bias. The
  paper's TOP1/BPR-max losses are not implemented (`loss=ce` is GRU4Rec's cross-entropy variant).
With `model.item_features=tfidf` the input and the output item tables are each fused with the items'
side features (two fusions: inputs and outputs live in different spaces).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import ItemTable
from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.item_rows import ITEM_ROWS
from recattn_jax.layers.recurrent import RecurrentEncoder
from recattn_jax.models import field_fusion, item_table, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, Users


class RecurrentRecommender(nnx.Module):
    kind = ModelKind.DOT_PRODUCT

    def __init__(
        self,
        items: ItemTable,
        encoder: RecurrentEncoder,
        outputs: ItemTable,
        dropout: float,
        *,
        rngs: nnx.Rngs,
        bias: bool = False,
        num_event_types: int = 0,
    ):
        rows, dim = outputs.table.shape
        self.items, self.encoder, self.outputs = items, encoder, outputs
        # b_i per item: zeros from a key of its own, as nnx.Linear draws one (later initial weights unchanged)
        self.bias = nnx.Param(nnx.initializers.zeros(rngs.params(), (rows,)), **ITEM_ROWS) if bias else None
        self.constant_columns = int(bias)  # the 1 after each state (user features leave it at 1)
        self.dropout = Dropout(dropout)
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # None without event types

    def encode(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        del users  # read by the user-features wrapper only
        x = self.dropout(add_events(self.items(seq), self.events, events), deterministic=rngs is None, rngs=rngs)
        h = self.dropout(self.encoder(x, seq), deterministic=rngs is None, rngs=rngs)
        if self.bias is None:
            return h
        return jnp.concatenate([h, jnp.ones_like(h[..., :1])], axis=-1)  # the 1 multiplies the bias

    def item_table(self) -> Float[Array, "I D"]:
        if self.bias is None:
            return self.outputs.table
        return jnp.concatenate([self.outputs.table, self.bias[...][:, None]], axis=-1)

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        return self.encode(seq, events=events, users=users)[:, -1]  # right-aligned: the newest item sits last


def transposed(init):
    """`init` drawn as the [D, I] kernel of a dense layer, stored as an [I, D] item table (same values)."""
    return lambda key, shape, dtype=jnp.float32: init(key, shape[::-1], dtype).T


@register_model("lstm", kind=ModelKind.DOT_PRODUCT, item_features=True, user_features=True, events=True)
def build_lstm(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> RecurrentRecommender:
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)  # nnx.Embed's default
    # created in the source article's order (inputs, output fusion, LSTM, dense kernel, bias): the same initial weights
    items = item_table(config, num_items, init, backend=backend, rngs=rngs, features=features)
    fusion = field_fusion(config, num_items + 1, backend=backend, rngs=rngs, features=features)
    encoder = RecurrentEncoder(config.hidden, config.hidden, "lstm", rngs=rngs)
    dense = transposed(nnx.initializers.lecun_normal())  # nnx.Linear's default kernel init
    outputs = ItemTable(num_items + 1, config.hidden, dense, rngs=rngs, fusion=fusion)
    return RecurrentRecommender(
        items, encoder, outputs, config.dropout, rngs=rngs, bias=True, num_event_types=num_event_types
    )


@register_model("gru4rec", kind=ModelKind.DOT_PRODUCT, item_features=True, user_features=True, events=True)
def build_gru4rec(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> RecurrentRecommender:
    init = nnx.initializers.normal(stddev=config.hidden**-0.5)
    items, outputs = [
        item_table(config, num_items, init, backend=backend, rngs=rngs, features=features) for _ in range(2)
    ]
    encoder = RecurrentEncoder(config.hidden, config.hidden, "gru", rngs=rngs)
    return RecurrentRecommender(items, encoder, outputs, config.dropout, rngs=rngs, num_event_types=num_event_types)
