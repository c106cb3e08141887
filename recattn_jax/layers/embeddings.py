"""Item and position embeddings of left-padded sequences."""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.item_rows import ITEM_ROWS


class SequenceEmbedding(nnx.Module):
    """item_embedding(seq) * sqrt(D) + position_embedding(0..L-1) [+ event_embedding(events)]; the item
    table is tied to the scorer. The event table exists only when `num_event_types` > 0.

    Row 0 of the item table is padding: padded positions are zeroed by the caller's mask, and
    padding is never a candidate, so its row gets no gradient that matters. The item table is marked
    as item rows (a mesh shards and pads it); the position and event tables are not.
    """

    def __init__(
        self,
        num_items: int,
        dim: int,
        max_len: int,
        *,
        rngs: nnx.Rngs,
        fusion: nnx.Module | None = None,
        num_event_types: int = 0,
    ):
        init = nnx.initializers.xavier_normal()  # as SASRec's reference implementations
        self.items = nnx.Embed(num_items + 1, dim, embedding_init=init, embedding_metadata=ITEM_ROWS, rngs=rngs)
        self.fusion = fusion  # ID embedding table -> fused item table (layers/field_fusion.py), or None
        self.positions = nnx.Embed(max_len, dim, embedding_init=init, rngs=rngs)
        self.scale = math.sqrt(dim)
        self.max_len = max_len
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # last: item and position inits unchanged

    def __call__(self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None) -> Float[Array, "B L D"]:
        if seq.shape[-1] > self.max_len:
            raise ValueError(f"sequence length {seq.shape[-1]} exceeds model.max_len={self.max_len}")
        # absolute positions in the window: right-aligned sequences put the newest item at L-1
        pos = jnp.arange(self.max_len - seq.shape[-1], self.max_len)
        items = self.items(seq) if self.fusion is None else self.table[seq]
        return add_events(items * self.scale + self.positions(pos)[None], self.events, events)

    @property
    def table(self) -> Float[Array, "I D"]:
        ids = self.items.embedding[...]
        return ids if self.fusion is None else self.fusion(ids)


class ItemTable(nnx.Module):
    """An item-id embedding table, fused with the items' side features when `fusion` is given
    (layers/field_fusion.py): `table` is [I+1, D] and `self(ids)` looks rows up. For models whose item
    vectors are not SequenceEmbedding's (recurrent inputs and outputs, matrix-factorisation factors)."""

    def __init__(self, rows: int, dim: int, init, *, rngs: nnx.Rngs, fusion: nnx.Module | None = None):
        self.ids = nnx.Embed(rows, dim, embedding_init=init, embedding_metadata=ITEM_ROWS, rngs=rngs)
        self.fusion = fusion

    @property
    def table(self) -> Float[Array, "I D"]:
        ids = self.ids.embedding[...]
        return ids if self.fusion is None else self.fusion(ids)

    def __call__(self, items: Int[Array, "..."]) -> Float[Array, "... D"]:
        return self.ids(items) if self.fusion is None else self.table[items]
