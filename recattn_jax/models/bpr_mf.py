"""Matrix factorisation trained with BPR (Rendle et al. 2009): score(u, i) = p_u . q_i.

The user factor is not a free row of a user table but the mean of the user's history-item factors,
p_u = mean_{j in history} y_j (NSVD / FISM style): the model's input stays the history, as for every
other model, and a user unseen in training still gets a factor. Training is pairwise: each training
position's target i against `model.train_negatives` uniform items k != i, loss
-log sigmoid(p_u . q_i - p_u . q_k), with the target's own y_i left out of p_u (FISM's
self-exclusion), so the model cannot learn to recommend what the user already has.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.models import register_model
from recattn_jax.train.losses import sample_negatives


class BprMF(nnx.Module):
    def __init__(self, num_items: int, dim: int, negatives: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(stddev=0.1)
        self.history_factors = nnx.Embed(num_items + 1, dim, embedding_init=init, rngs=rngs)  # y_j
        self.item_factors = nnx.Embed(num_items + 1, dim, embedding_init=init, rngs=rngs)  # q_i
        self.negatives = negatives
        self.num_items = num_items  # not the table's rows: a mesh pads them with rows that are never items

    def user_representation(self, seq: Int[Array, "B L"]) -> Float[Array, "B D"]:
        valid = (seq != 0)[..., None]
        total = jnp.sum(self.history_factors(seq) * valid, axis=1)
        return total / jnp.maximum(jnp.sum(valid, axis=1), 1)

    def item_table(self) -> Float[Array, "I D"]:
        return self.item_factors.embedding[...]

    def train_loss(self, batch, loss_fn, rng, rngs):
        del loss_fn, rngs  # BPR is this model's objective
        inputs, targets = batch["inputs"], batch["targets"]
        valid = (inputs != 0)[..., None]
        y = self.history_factors(inputs) * valid
        count = jnp.sum(valid, axis=1, keepdims=True)  # [B, 1, 1]
        # targets[t] is inputs[t + 1] for t < L - 1: leave that one item out of the user factor
        own = jnp.concatenate([y[:, 1:], jnp.zeros_like(y[:, :1])], axis=1)
        in_history = jnp.concatenate([valid[:, 1:], jnp.zeros_like(valid[:, :1])], axis=1)
        user = (jnp.sum(y, axis=1, keepdims=True) - own) / jnp.maximum(count - in_history, 1)  # [B, L, D]
        table = self.item_table()
        negatives = sample_negatives(rng, targets, self.num_items, self.negatives)  # [B, L, K]
        pos = jnp.einsum("bld,bld->bl", user, table[targets])
        neg = jnp.einsum("bld,blkd->blk", user, table[negatives])
        nll = -jnp.mean(jax.nn.log_sigmoid(pos[..., None] - neg), axis=-1)
        mask = targets != 0
        return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


@register_model("bpr_mf")
def build_bpr_mf(config, num_items: int, *, backend: str, rngs: nnx.Rngs) -> BprMF:
    del backend
    return BprMF(num_items, config.hidden, config.train_negatives, rngs=rngs)
