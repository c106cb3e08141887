"""Item and position embeddings of left-padded sequences."""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.event_embedding import add_events, event_embedding
from recattn_jax.layers.item_rows import ITEM_ROWS

POSITIONS = ("from_newest", "from_oldest")  # model.positions: where position ids count from; the first is the default


class SequenceEmbedding(nnx.Module):
    """item_embedding(seq) * sqrt(D) + position_embedding(position_ids(seq)) [+ event_embedding(events)]; the
    item table is tied to the scorer. The event table exists only when `num_event_types` > 0.

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
        from_oldest: bool = False,
    ):
        init = nnx.initializers.xavier_normal()  # as SASRec's reference implementations
        self.items = nnx.Embed(num_items + 1, dim, embedding_init=init, embedding_metadata=ITEM_ROWS, rngs=rngs)
        self.fusion = fusion  # ID embedding table -> fused item table (layers/field_fusion.py), or None
        self.positions = nnx.Embed(max_len, dim, embedding_init=init, rngs=rngs)
        self.scale = math.sqrt(dim)
        self.max_len = max_len
        self.from_oldest = from_oldest
        self.events = event_embedding(num_event_types, dim, rngs=rngs)  # last: item and position inits unchanged

    def __call__(self, seq: Int[Array, "B L"], events: Int[Array, "B L"] | None = None) -> Float[Array, "B L D"]:
        if seq.shape[-1] > self.max_len:
            raise ValueError(f"sequence length {seq.shape[-1]} exceeds model.max_len={self.max_len}")
        items = self.items(seq) if self.fusion is None else self.table[seq]
        return add_events(items * self.scale + self.positions(self.position_ids(seq)), self.events, events)

    def position_ids(self, seq: Int[Array, "B L"]) -> Int[Array, "B|1 L"]:
        """Each slot's position id. from_newest: the newest item (slot L-1) is max_len-1, whatever the row's
        length, the same ids for every row ([1, L]); from_oldest: the row's oldest item is 0 and the newest its
        length-1 ([B, L]; padding slots get 0, and the caller zeroes them). Either way a history cut to fewer
        slots keeps its items' ids."""
        length = seq.shape[-1]
        slots = jnp.arange(length)
        if not self.from_oldest:
            return (slots + (self.max_len - length))[None]
        padding = length - jnp.sum(seq != 0, axis=-1, keepdims=True)  # left padding: items sit at [padding, L)
        return jnp.maximum(slots - padding, 0)

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
