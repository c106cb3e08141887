"""GRU4Rec (Hidasi et al. 2016): item embedding -> GRU -> scores by an output item embedding table.

Trained on every position of the session (the next item), with the configured loss; the paper's
TOP1/BPR-max losses are not implemented (`loss=ce` is GRU4Rec's cross-entropy variant).
With `model.item_features=tfidf` the input and the output item tables are each fused with the items'
side features (two fusions: inputs and outputs live in different spaces).
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import ItemTable
from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.recurrent import RecurrentEncoder
from recattn_jax.models import item_table, register_model


class GRU4Rec(nnx.Module):
    def __init__(
        self, items: ItemTable, outputs: ItemTable, dropout: float, *, rngs: nnx.Rngs, num_event_types: int = 0
    ):
        dim = outputs.table.shape[1]
        self.items = items
        self.encoder = RecurrentEncoder(dim, dim, "gru", rngs=rngs)
        self.outputs = outputs
        self.dropout = Dropout(dropout)
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # None without event types

    def encode(
        self, seq: Int[Array, "B L"], *, events: Int[Array, "B L"] | None = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        x = self.dropout(add_events(self.items(seq), self.events, events), deterministic=rngs is None, rngs=rngs)
        return self.dropout(self.encoder(x, seq), deterministic=rngs is None, rngs=rngs)

    def item_table(self) -> Float[Array, "I D"]:
        return self.outputs.table

    def user_representation(
        self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.encode(seq, events=events)[:, -1]


@register_model("gru4rec", item_features=True, user_features=True, events=True)
def build_gru4rec(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> GRU4Rec:
    init = nnx.initializers.normal(stddev=config.hidden**-0.5)
    tables = [item_table(config, num_items, init, backend=backend, rngs=rngs, features=features) for _ in range(2)]
    return GRU4Rec(*tables, config.dropout, rngs=rngs, num_event_types=num_event_types)
