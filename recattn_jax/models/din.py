"""Deep Interest Network (Zhou et al. 2018): per candidate item, attention over the history with the
candidate as the query, then an MLP over (interest, candidate, interest * candidate) gives the score.

Full ranking scores B x all items x S history positions. The candidates are scored in chunks of
`model.candidate_chunk` items (lax.map over chunks), so at most [B, chunk, S] attention scores exist at
once and no [B, items, S] tensor is materialised.

Training (full CE would need B x L x I x S): a sampled softmax at every position t, over the
positive (the next item) and `model.train_negatives` uniform items != positive, each candidate
attending to the prefix ..t (causal target attention). The `loss=` group does not apply to DIN.

User side features (`model.user_features=true`) enter as `user_offset`, added to the attended
interest before the MLP (models/user_features.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import SequenceEmbedding
from recattn_jax.layers.masks import left_padded_bounds
from recattn_jax.layers.target_attention import TargetAttention
from recattn_jax.losses import masked_mean, sample_negatives
from recattn_jax.models import item_embedding, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, UserOffset, Users


class ScoreMLP(nnx.Module):
    """(interest, candidate) -> one score: Linear -> ReLU -> Linear over [u, e, u * e]."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.inner = nnx.Linear(3 * dim, dim, rngs=rngs)
        self.outer = nnx.Linear(dim, 1, rngs=rngs)

    def __call__(self, interest: Float[Array, "B T D"], candidate: Float[Array, "B T D"]) -> Float[Array, "B T"]:
        h = jnp.concatenate([interest, candidate, interest * candidate], axis=-1)
        return self.outer(nnx.relu(self.inner(h)))[..., 0]


class DIN(nnx.Module):
    kind = ModelKind.OWN_SCORING

    def __init__(
        self,
        embedding: SequenceEmbedding,
        attention: TargetAttention,
        scorer: ScoreMLP,
        dropout: float,
        candidate_chunk: int,
        negatives: int,
        num_items: int,
    ):
        self.embedding, self.attention, self.scorer = embedding, attention, scorer
        self.dropout = Dropout(dropout)
        self.candidate_chunk, self.negatives = candidate_chunk, negatives
        self.num_items = num_items  # not the table's rows: a mesh pads them with rows that are never items

    def _history(self, seq: Seq, rngs: nnx.Rngs | None = None, events: Events = None):
        x = self.dropout(self.embedding(seq, events), deterministic=rngs is None, rngs=rngs)
        return x * (seq != 0)[..., None], *left_padded_bounds(seq)

    def _candidates(self, items: Int[Array, "B T"]) -> Float[Array, "B T D"]:
        return self.embedding.table[items] * self.embedding.scale

    def _interest(self, cand, history, kv_start, kv_end, user_offset, causal: bool = False):
        interest = self.attention(cand, history, kv_start, kv_end, causal=causal)
        return interest if user_offset is None else interest + user_offset[:, None]

    def score_items(
        self,
        seq: Seq,
        items: Int[Array, "B C"],
        *,
        events: Events = None,
        users: Users = None,
        user_offset: UserOffset = None,
    ) -> Float[Array, "B C"]:
        del users  # read by the user-features wrapper only, which passes user_offset
        history, kv_start, kv_end = self._history(seq, events=events)
        cand = self._candidates(items)
        return self.scorer(self._interest(cand, history, kv_start, kv_end, user_offset), cand)

    def score_all(
        self,
        seq: Seq,
        *,
        events: Events = None,
        users: Users = None,
        user_offset: UserOffset = None,
        chunk: int | None = None,
    ) -> Float[Array, "B I"]:
        """Scores of items 0..I, `chunk` (default model.candidate_chunk) candidates at a time."""
        del users  # read by the user-features wrapper only, which passes user_offset
        chunk = chunk or self.candidate_chunk
        num = self.embedding.table.shape[0]  # I + 1, padding included
        chunks = math.ceil(num / chunk)
        # [chunks, chunk] candidate ids; the tail of the last chunk repeats item 0 and is cut below
        ids = jnp.arange(chunks * chunk, dtype=jnp.int32).reshape(chunks, chunk) % num
        history, kv_start, kv_end = self._history(seq, events=events)
        b = seq.shape[0]
        table = self.embedding.table * self.embedding.scale  # once: a fused table costs a pass over fields

        def one_chunk(items: Int[Array, " C"]) -> Float[Array, "B C"]:
            cand = jnp.broadcast_to(table[items][None], (b, chunk, history.shape[-1]))
            return self.scorer(self._interest(cand, history, kv_start, kv_end, user_offset), cand)

        scores = jax.lax.map(one_chunk, ids)  # [chunks, B, chunk]
        return jnp.moveaxis(scores, 0, 1).reshape(b, chunks * chunk)[:, :num]

    def train_loss(self, batch, loss_fn, rng, rngs, *, user_offset: UserOffset = None):
        del loss_fn  # DIN's own sampled objective, see the module docstring
        inputs, targets = batch["inputs"], batch["targets"]
        history, kv_start, kv_end = self._history(inputs, rngs, batch.get("events"))
        negatives = sample_negatives(rng, targets, self.num_items, self.negatives)
        items = jnp.concatenate([targets[..., None], negatives], axis=-1)  # [B, L, 1+K], positive first
        b, length, c = items.shape
        # one causal pass per candidate slot: fold the 1+K slots into the batch, [B, L, 1+K] -> [(1+K) B, L]
        folded = jnp.moveaxis(items, -1, 0).reshape(c * b, length)
        tile = lambda a: jnp.tile(a, (c,) + (1,) * (a.ndim - 1))  # noqa: E731
        cand = self._candidates(folded)
        offset = None if user_offset is None else tile(user_offset)
        interest = self._interest(cand, tile(history), tile(kv_start), tile(kv_end), offset, causal=True)
        logits = jnp.moveaxis(self.scorer(interest, cand).reshape(c, b, length), 0, -1)  # [B, L, 1+K]
        nll = jax.nn.logsumexp(logits, axis=-1) - logits[..., 0]
        mask = targets != 0
        return masked_mean(nll, mask)


@register_model("din", kind=ModelKind.OWN_SCORING, item_features=True, user_features=True, events=True)
def build_din(config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0) -> DIN:
    return DIN(
        item_embedding(
            config, num_items, backend=backend, rngs=rngs, features=features, num_event_types=num_event_types
        ),
        TargetAttention(config.hidden, config.heads, backend=backend, rngs=rngs),
        ScoreMLP(config.hidden, rngs=rngs),
        config.dropout,
        config.candidate_chunk,
        config.train_negatives,
        num_items,
    )
