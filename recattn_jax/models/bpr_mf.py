"""Matrix factorisation trained with BPR (Rendle et al. 2009): score(u, i) = p_u . q_i.

The user factor is not a free row of a user table but the mean of the user's history-item factors,
p_u = mean_{j in history} y_j (NSVD / FISM style): the model's input stays the history, as for every
other model, and a user unseen in training still gets a factor. Training is pairwise: each training
position's target i against `model.train_negatives` uniform items k != i, loss
-log sigmoid(p_u . q_i - p_u . q_k), with the target's own y_i left out of p_u (FISM's
self-exclusion), so the model cannot learn to recommend what the user already has.
With `model.item_features=tfidf` both factor tables are fused with the items' side features;
with `model.user_features=true` the projected user features are added to p_u (models/user_features.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.embeddings import ItemTable
from recattn_jax.losses import masked_mean, sample_negatives
from recattn_jax.models import item_table, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, UserOffset, Users, refuse_events


class BprMF(nnx.Module):
    kind = ModelKind.OWN_LOSS

    def __init__(self, history_factors: ItemTable, item_factors: ItemTable, negatives: int, num_items: int):
        self.history_factors = history_factors  # y_j
        self.item_factors = item_factors  # q_i
        self.negatives = negatives
        self.num_items = num_items  # not the table's rows: a mesh pads them with rows that are never items

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        refuse_events(events, "bpr_mf")
        del users  # read by the user-features wrapper only
        valid = (seq != 0)[..., None]
        total = jnp.sum(self.history_factors(seq) * valid, axis=1)
        return total / jnp.maximum(jnp.sum(valid, axis=1), 1)

    def item_table(self) -> Float[Array, "I D"]:
        return self.item_factors.table

    def train_loss(self, batch, loss_fn, rng, rngs, *, user_offset: UserOffset = None):
        """BPR over every training position; `user_offset` (user side features) is added to p_u."""
        del loss_fn, rngs  # BPR is this model's objective
        inputs, targets = batch["inputs"], batch["targets"]
        valid = (inputs != 0)[..., None]
        y = self.history_factors(inputs) * valid
        count = jnp.sum(valid, axis=1, keepdims=True)  # [B, 1, 1]
        # targets[t] is inputs[t + 1] for t < L - 1: leave that one item out of the user factor
        own = jnp.concatenate([y[:, 1:], jnp.zeros_like(y[:, :1])], axis=1)
        in_history = jnp.concatenate([valid[:, 1:], jnp.zeros_like(valid[:, :1])], axis=1)
        user = (jnp.sum(y, axis=1, keepdims=True) - own) / jnp.maximum(count - in_history, 1)  # [B, L, D]
        if user_offset is not None:
            user = user + user_offset[:, None]
        table = self.item_table()
        negatives = sample_negatives(rng, targets, self.num_items, self.negatives)  # [B, L, K]
        pos = jnp.einsum("bld,bld->bl", user, table[targets])
        neg = jnp.einsum("bld,blkd->blk", user, table[negatives])
        nll = -jnp.mean(jax.nn.log_sigmoid(pos[..., None] - neg), axis=-1)
        mask = targets != 0
        return masked_mean(nll, mask)


@register_model("bpr_mf", kind=ModelKind.OWN_LOSS, item_features=True, user_features=True)
def build_bpr_mf(config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None) -> BprMF:
    init = nnx.initializers.normal(stddev=0.1)
    tables = [item_table(config, num_items, init, backend=backend, rngs=rngs, features=features) for _ in range(2)]
    return BprMF(*tables, config.train_negatives, num_items)
