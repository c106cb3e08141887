"""GRU4Rec (Hidasi et al. 2016): item embedding -> GRU -> scores by an output item embedding table.

Trained on every position of the session (the next item), with the configured loss; the paper's
TOP1/BPR-max losses are not implemented (`loss=ce` is GRU4Rec's cross-entropy variant).
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.recurrent import RecurrentEncoder
from recattn_jax.models import register_model


class GRU4Rec(nnx.Module):
    def __init__(self, num_items: int, dim: int, dropout: float, *, rngs: nnx.Rngs, num_event_types: int = 0):
        init = nnx.initializers.normal(stddev=dim**-0.5)
        self.items = nnx.Embed(num_items + 1, dim, embedding_init=init, rngs=rngs)
        self.encoder = RecurrentEncoder(dim, dim, "gru", rngs=rngs)
        self.outputs = nnx.Embed(num_items + 1, dim, embedding_init=init, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # None without event types

    def encode(
        self, seq: Int[Array, "B L"], *, events: Int[Array, "B L"] | None = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        x = self.dropout(add_events(self.items(seq), self.events, events), deterministic=rngs is None, rngs=rngs)
        return self.dropout(self.encoder(x, seq), deterministic=rngs is None, rngs=rngs)

    def item_table(self) -> Float[Array, "I D"]:
        return self.outputs.embedding[...]

    def user_representation(
        self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.encode(seq, events=events)[:, -1]


@register_model("gru4rec", events=True)
def build_gru4rec(config, num_items: int, *, backend: str, rngs: nnx.Rngs, num_event_types: int = 0) -> GRU4Rec:
    del backend
    return GRU4Rec(num_items, config.hidden, config.dropout, rngs=rngs, num_event_types=num_event_types)
