"""Attention pooling: the user is the attention-weighted sum of its history's item embeddings.

a_i = softmax_i(w . x_i) over the valid (non-padding) positions, one learned w per head; the user
vector sum_i a_i x_i is scored against every item embedding (tied table). x_i carries a position
embedding, so the weights can depend on recency.
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import SequenceEmbedding
from recattn_jax.layers.masks import left_padded_bounds
from recattn_jax.layers.pooling import AttentionPooling
from recattn_jax.models import item_embedding, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, Users


class AttnPool(nnx.Module):
    kind = ModelKind.DOT_PRODUCT

    def __init__(self, embedding: SequenceEmbedding, pooling: AttentionPooling, dropout: float):
        self.embedding = embedding
        self.pooling = pooling
        self.dropout = Dropout(dropout)

    def _inputs(self, seq: Seq, rngs: nnx.Rngs | None = None, events: Events = None):
        x = self.dropout(self.embedding(seq, events), deterministic=rngs is None, rngs=rngs)
        return x * (seq != 0)[..., None], *left_padded_bounds(seq)

    def encode(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        """Pooled vector of every prefix (causal), so training predicts the next item at every position."""
        del users  # read by the user-features wrapper only
        return self.pooling.prefixes(*self._inputs(seq, rngs, events))

    def user_representation(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B D"]:
        del users  # read by the user-features wrapper only
        return self.pooling(*self._inputs(seq, rngs, events))  # kernels.attention_pool over the whole history

    def attention_weights(self, seq: Seq, *, events: Events = None) -> Float[Array, "B N L"]:
        return self.pooling.weights(*self._inputs(seq, events=events))

    def item_table(self) -> Float[Array, "I D"]:
        return self.embedding.table


@register_model("attn_pool", kind=ModelKind.DOT_PRODUCT, item_features=True, user_features=True, events=True)
def build_attn_pool(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> AttnPool:
    return AttnPool(
        item_embedding(
            config, num_items, backend=backend, rngs=rngs, features=features, num_event_types=num_event_types
        ),
        AttentionPooling(config.hidden, config.heads, backend=backend, rngs=rngs),
        config.dropout,
    )
