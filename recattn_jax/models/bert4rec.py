"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer encoder trained by masked-item prediction.

Training: each item of a user's training sequence (the targets row: the last max_len training
items) is replaced with probability `model.mask_prob` by the [mask] token (id I + 1, a row of the
embedding table that is never a candidate); the outputs at the masked positions predict the hidden
items with the configured next-item loss (`loss=ce`: full softmax over the items). Test: [mask] is
appended after the history (whose oldest item drops out of the window) and its output is the user.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.embeddings import SequenceEmbedding
from recattn_jax.layers.masks import item_mask, left_padded_bounds
from recattn_jax.layers.transformer import TransformerEncoder
from recattn_jax.models import item_embedding, register_model


class BERT4Rec(nnx.Module):
    def __init__(self, embedding: SequenceEmbedding, encoder: TransformerEncoder, dropout: float, mask_prob: float):
        self.embedding, self.encoder = embedding, encoder
        self.dropout = nnx.Dropout(dropout)
        self.mask_prob = mask_prob
        self.mask_token = embedding.table.shape[0] - 1  # I + 1

    def encode(self, seq: Int[Array, "B L"], *, rngs: nnx.Rngs | None = None) -> Float[Array, "B L D"]:
        """Hidden state per position; every position sees the whole sequence (bidirectional)."""
        valid = item_mask(seq)
        kv_start, kv_end = left_padded_bounds(seq)
        x = self.dropout(self.embedding(seq), deterministic=rngs is None, rngs=rngs) * valid[..., None]
        return self.encoder(x, valid, kv_start, kv_end, causal=False, rngs=rngs)

    def item_table(self) -> Float[Array, "I D"]:
        return self.embedding.table[: self.mask_token]  # items 0..I; [mask] is never a candidate

    def user_representation(self, seq: Int[Array, "B L"]) -> Float[Array, "B D"]:
        mask = jnp.full((seq.shape[0], 1), self.mask_token, seq.dtype)
        return self.encode(jnp.concatenate([seq[:, 1:], mask], axis=1))[:, -1]

    def train_loss(self, batch, loss_fn, rng, rngs, user_offset: Float[Array, "B D"] | None = None):
        """Masked-item loss; `user_offset` (user side features) is added to every output state."""
        seq = batch["targets"]  # the last max_len items of each training sequence, right-aligned
        masked = (jax.random.uniform(rng, seq.shape) < self.mask_prob) & (seq != 0)
        inputs = jnp.where(masked, self.mask_token, seq)
        labels = jnp.where(masked, seq, 0)  # the loss averages over labelled positions only
        hidden = self.encode(inputs, rngs=rngs)
        if user_offset is not None:
            hidden = hidden + user_offset[:, None]
        return loss_fn(hidden, self.item_table(), labels, jax.random.fold_in(rng, 1))


@register_model("bert4rec", item_features=True, user_features=True)
def build_bert4rec(config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None) -> BERT4Rec:
    return BERT4Rec(
        # one extra row: the [mask] token
        item_embedding(config, num_items, backend=backend, rngs=rngs, features=features, extra_rows=1),
        TransformerEncoder(
            config.hidden, config.heads, config.blocks, config.dropout, config.layer_norm, backend, rngs=rngs
        ),
        config.dropout,
        config.mask_prob,
    )
