"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer encoder trained by masked-item prediction.

Training: each item of a user's training sequence (the targets row: the last max_len of its
training items after the first, which therefore never trains) is replaced with probability
`model.mask_prob` by the [mask] token (id I + 1, a row of the embedding table that is never a
candidate); the outputs at the masked positions predict the hidden items with the configured
next-item loss (`loss=ce`: full softmax over the items). Test: [mask] is appended after the history
(whose oldest item drops out of the window) and its output is the user.
With event types (data.event_col), a [mask] position gets event 0, "unknown": at test time the next
event is not known, so training hides the masked items' events as well.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import SequenceEmbedding
from recattn_jax.layers.masks import item_mask, left_padded_bounds
from recattn_jax.layers.transformer import TransformerEncoder
from recattn_jax.models import item_embedding, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, UserOffset, Users


class BERT4Rec(nnx.Module):
    kind = ModelKind.OWN_LOSS

    def __init__(self, embedding: SequenceEmbedding, encoder: TransformerEncoder, dropout: float, mask_prob: float):
        self.embedding, self.encoder = embedding, encoder
        self.dropout = Dropout(dropout)
        self.mask_prob = mask_prob
        self.mask_token = embedding.table.shape[0] - 1  # I + 1

    def encode(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        """Hidden state per position; every position sees the whole sequence (bidirectional)."""
        del users  # read by the user-features wrapper only
        valid = item_mask(seq)
        kv_start, kv_end = left_padded_bounds(seq)
        x = self.dropout(self.embedding(seq, events), deterministic=rngs is None, rngs=rngs) * valid[..., None]
        return self.encoder(x, valid, kv_start, kv_end, causal=False, rngs=rngs)

    def item_table(self) -> Float[Array, "I D"]:
        return self.embedding.table[: self.mask_token]  # items 0..I; [mask] is never a candidate

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        del users  # read by the user-features wrapper only
        mask = jnp.full((seq.shape[0], 1), self.mask_token, seq.dtype)
        if events is not None:  # the [mask] position's event is unknown: 0
            events = jnp.concatenate([events[:, 1:], jnp.zeros_like(events[:, :1])], axis=1)
        return self.encode(jnp.concatenate([seq[:, 1:], mask], axis=1), events=events)[:, -1]

    def train_loss(self, batch, loss_fn, rng, rngs, *, user_offset: UserOffset = None):
        """Masked-item loss; `user_offset` (user side features) is added to every output state."""
        seq = batch["targets"]  # each training sequence but its first item, the last max_len, right-aligned
        masked = (jax.random.uniform(rng, seq.shape) < self.mask_prob) & (seq != 0)
        inputs = jnp.where(masked, self.mask_token, seq)
        labels = jnp.where(masked, seq, 0)  # the loss averages over labelled positions only
        events = batch.get("target_events")  # aligned with the targets row; a masked item's event is hidden
        hidden = self.encode(inputs, events=None if events is None else jnp.where(masked, 0, events), rngs=rngs)
        if user_offset is not None:
            hidden = hidden + user_offset[:, None]
        return loss_fn(hidden, self.item_table(), labels, jax.random.fold_in(rng, 1))


@register_model("bert4rec", kind=ModelKind.OWN_LOSS, item_features=True, user_features=True, events=True)
def build_bert4rec(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> BERT4Rec:
    return BERT4Rec(
        # one extra row: the [mask] token
        item_embedding(
            config,
            num_items,
            backend=backend,
            rngs=rngs,
            features=features,
            extra_rows=1,
            num_event_types=num_event_types,
        ),
        TransformerEncoder(
            config.hidden, config.heads, config.blocks, config.dropout, config.layer_norm, backend, rngs=rngs
        ),
        config.dropout,
        config.mask_prob,
    )
