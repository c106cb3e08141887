"""Full softmax cross-entropy over an item-sharded table, without gathering the table or building its logits.

Each `model` shard takes the log-sum-exp of its rows of the table through the chunked linear-CE op
(`kernels.linear_lse_and_target_logit`, never a shard's [b, L, R] logits), and the shards combine them
(pmax, psum) into the global log-sum-exp; the target logit comes from the one shard that holds the
target's row. Rows 0 (padding) and > I (mesh padding) are never candidates.
Axis legend: B batch, L positions, D model dim, R item rows of one shard.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

import kernels
from recattn_jax.config import LossConfig
from recattn_jax.losses import next_item_loss
from recattn_jax.parallel.mesh import ParallelLayout


def _local_nll(hidden, table, targets, num_items: int):
    """Per-position NLL on one (data, model) shard, combined over `model`: [b, L].

    This shard's log-sum-exp over its candidate rows and its target logits come from
    `kernels.linear_lse_and_target_logit` (item chunks, never the [b, L, R] logits); the shards' log-sum-exps
    combine by pmax / psum and the one shard that holds a target's row gives its logit."""
    b, length, dim = hidden.shape
    rows = table.shape[0]
    offset = jax.lax.axis_index("model") * rows  # global id of this shard's first row
    local = targets.reshape(-1) - offset
    here = (targets.reshape(-1) != 0) & (local >= 0) & (local < rows)
    # global rows 1..num_items are items: padding (0) and mesh-pad rows (> num_items) never compete; a shard
    # of mesh padding alone has no candidate and gives lse = -inf, which adds nothing below
    candidates = (jnp.clip(1 - offset, 0, rows), jnp.clip(num_items + 1 - offset, 0, rows))
    # the op's custom VJP needs its inputs typed as varying over both mesh axes, as its outputs are; the casts'
    # transposes sum the shards' partial gradients (hidden's over `model`, the table's over `data`)
    hidden = jax.lax.pcast(hidden.reshape(-1, dim), "model", to="varying")
    table = jax.lax.pcast(table, "data", to="varying")
    lse, target_logit = kernels.linear_lse_and_target_logit(
        hidden, table, jnp.clip(local, 0, rows - 1), has_target=here, candidates=candidates
    )
    top = jax.lax.pmax(jax.lax.stop_gradient(lse), "model")  # only stabilises the exponentials
    total = top + jnp.log(jax.lax.psum(jnp.exp(lse - top), "model"))
    return (total - jax.lax.psum(target_logit, "model")).reshape(b, length)


def sharded_cross_entropy(layout: ParallelLayout, temperature: float = 1.0):
    """f(hidden, table, targets, rng) -> scalar, equal to `full_cross_entropy` (with `temperature`: of the
    logits / temperature) on the unpadded table."""
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
        if temperature != 1.0:
            hidden = hidden / temperature  # (hidden / T) . item = logit / T
        return sharded(hidden, layout.fit_rows(table), targets)

    return loss


def sharded_next_item_loss(config: LossConfig, layout: ParallelLayout):
    """`loss.name` on a mesh: CE from sharded logits; BCE on the unpadded rows (negatives never mesh pad)."""
    if config.name == "ce":
        return sharded_cross_entropy(layout, config.temperature)
    base = next_item_loss(
        config.name, config.num_negatives, gbce_t=config.gbce_t, logq_correction=config.logq_correction
    )
    rows = layout.num_items + 1
    return lambda hidden, table, targets, rng: base(hidden, table[:rows], targets, rng)  # no mesh-pad rows
