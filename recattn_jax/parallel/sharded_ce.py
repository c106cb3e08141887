"""Full softmax cross-entropy from item-sharded logits, without gathering the item table.

Each `model` shard scores its rows of the table, takes its own max and sum of exponentials, and the
shards combine them (pmax, psum) into the global log-sum-exp; the target logit comes from the one
shard that holds the target's row. Rows 0 (padding) and > I (mesh padding) are never candidates.
Axis legend: B batch, L positions, D model dim, R item rows of one shard.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from recattn_jax.config import LossConfig
from recattn_jax.losses import next_item_loss
from recattn_jax.parallel.mesh import ParallelLayout


def _local_nll(hidden, table, targets, num_items: int):
    """Per-position NLL on one (data, model) shard, combined over `model`: [b, L]."""
    rows = table.shape[0]
    offset = jax.lax.axis_index("model") * rows  # global id of this shard's first row
    ids = offset + jnp.arange(rows)
    logits = jnp.einsum("bld,rd->blr", hidden, table, preferred_element_type=jnp.float32)
    logits = jnp.where((ids == 0) | (ids > num_items), -jnp.inf, logits)  # padding and mesh-pad rows
    # the max only stabilises the exponentials: no gradient through it (pmax has none)
    local_max = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
    global_max = jax.lax.pmax(local_max, "model")
    sum_exp = jax.lax.psum(jnp.sum(jnp.exp(logits - global_max[..., None]), axis=-1), "model")
    lse = global_max + jnp.log(sum_exp)
    local = targets - offset
    here = (local >= 0) & (local < rows)
    picked = jnp.take_along_axis(logits, jnp.clip(local, 0, rows - 1)[..., None], axis=-1)[..., 0]
    target_logit = jax.lax.psum(jnp.where(here & (targets != 0), picked, 0.0), "model")
    return lse - target_logit


def sharded_cross_entropy(layout: ParallelLayout):
    """f(hidden, table, targets, rng) -> scalar, equal to `full_cross_entropy` on the unpadded table."""
    num_items = layout.num_items

    def per_shard(hidden, table, targets):
        nll = _local_nll(hidden, table, targets, num_items)
        mask = targets != 0
        total = jax.lax.psum(jnp.sum(jnp.where(mask, nll, 0.0)), "data")
        count = jax.lax.psum(jnp.sum(mask.astype(jnp.float32)), "data")
        return total / jnp.maximum(count, 1.0)

    sharded = jax.shard_map(
        per_shard,
        mesh=layout.mesh,
        in_specs=(P("data", None, None), P("model", None), P("data", None)),
        out_specs=P(),
    )

    def loss(hidden: Float[Array, "B L D"], table: Float[Array, "I D"], targets: Int[Array, "B L"], rng: Array):
        del rng
        return sharded(hidden, layout.fit_rows(table), targets)

    return loss


def sharded_next_item_loss(config: LossConfig, layout: ParallelLayout):
    """`loss.name` on a mesh: CE from sharded logits; BCE on the unpadded rows (negatives never mesh pad)."""
    if config.name == "ce":
        return sharded_cross_entropy(layout)
    base = next_item_loss(
        config.name, config.num_negatives, gbce_t=config.gbce_t, logq_correction=config.logq_correction
    )
    rows = layout.num_items + 1
    return lambda hidden, table, targets, rng: base(hidden, table[:rows], targets, rng)  # no mesh-pad rows
