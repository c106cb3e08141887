"""SASRec (Kang & McAuley 2018): causal self-attention over the behaviour history, tied item scorer."""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import SequenceEmbedding
from recattn_jax.layers.masks import item_mask, left_padded_bounds
from recattn_jax.layers.transformer import TransformerEncoder
from recattn_jax.models import item_embedding, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, Users


class SASRec(nnx.Module):
    kind = ModelKind.DOT_PRODUCT

    def __init__(self, embedding: SequenceEmbedding, encoder: TransformerEncoder, dropout: float):
        self.embedding = embedding
        self.encoder = encoder
        self.dropout = Dropout(dropout)

    def encode(
        self,
        seq: Seq,
        *,
        events: Events = None,
        users: Users = None,
        rngs: nnx.Rngs | None = None,
        last_only: bool = False,
    ) -> Float[Array, "B L D"]:
        """Hidden state per position; position t sees items 0..t only (causal). `last_only`: [B, 1, D]."""
        del users  # read by the user-features wrapper only
        valid = item_mask(seq)
        kv_start, kv_end = left_padded_bounds(seq)
        x = self.dropout(self.embedding(seq, events), deterministic=rngs is None, rngs=rngs)
        x = x * valid[..., None]
        return self.encoder(x, valid, kv_start, kv_end, causal=True, rngs=rngs, last_only=last_only)

    def item_table(self) -> Float[Array, "I D"]:
        return self.embedding.table

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        del users  # read by the user-features wrapper only
        # right-aligned: the newest item sits last, and only its state is computed in the last block
        return self.encode(seq, events=events, last_only=True)[:, -1]


@register_model("sasrec", kind=ModelKind.DOT_PRODUCT, item_features=True, user_features=True, events=True)
def build_sasrec(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> SASRec:
    return SASRec(
        item_embedding(
            config, num_items, backend=backend, rngs=rngs, features=features, num_event_types=num_event_types
        ),
        TransformerEncoder(
            config.hidden, config.heads, config.blocks, config.dropout, config.layer_norm, backend, rngs=rngs
        ),
        config.dropout,
    )
