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
from kernels.linear_cross_entropy import DEFAULT_CHUNK
from recattn_jax.config import LossConfig
from recattn_jax.losses import first_slots, next_item_loss, slot_masked_sums, with_row_items
from recattn_jax.parallel.mesh import ParallelLayout


def _local_nll(hidden, table, targets, num_items: int, backend: str):
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
        hidden, table, jnp.clip(local, 0, rows - 1), has_target=here, candidates=candidates, backend=backend
    )
    return _nll_over_shards(lse, target_logit).reshape(b, length)


def _nll_over_shards(lse: Float[Array, " P"], target_logit: Float[Array, " P"]) -> Float[Array, " P"]:
    """log-sum-exp of the `model` shards' `lse` (each over its own candidate rows; -inf where a shard has none)
    minus the target logit, which the one shard that holds the target's row gives (0 on the others)."""
    top = jax.lax.pmax(jax.lax.stop_gradient(lse), "model")  # only stabilises the exponentials
    top = jnp.where(jnp.isneginf(top), 0.0, top)
    total = jax.lax.psum(jnp.exp(lse - top), "model")
    return top + jnp.log(jnp.where(total > 0, total, 1.0)) - jax.lax.psum(target_logit, "model")


def _local_unseen_nll(hidden, table, targets, seen, num_items: int, chunk: int):
    """`_local_nll` whose softmax at slot t of row b leaves out the items of seen[b, :t+1] (the row's earlier
    items) but the target, as `losses.unseen_cross_entropy` on one device: [b, L]."""
    b, length, dim = hidden.shape
    rows = table.shape[0]
    offset = jax.lax.axis_index("model") * rows  # global id of this shard's first row
    first_slot = first_slots(seen, rows, chunk, offset)  # this shard's rows only
    row_of, slot_of = jnp.divmod(jnp.arange(b * length), length)
    flat_hidden, flat_targets = hidden.reshape(-1, dim), targets.reshape(-1)
    running_max, running_sum = slot_masked_sums(
        flat_hidden,
        table,
        flat_targets,
        first_slot,
        row_of,
        slot_of,
        chunk,
        end=num_items + 1,
        offset=offset,
    )
    has = running_sum > 0  # a shard may hold none of a position's candidates (mesh padding only)
    lse = jnp.where(has, running_max + jnp.log(jnp.where(has, running_sum, 1.0)), -jnp.inf)
    local = flat_targets - offset
    here = (flat_targets != 0) & (local >= 0) & (local < rows)
    picked = jnp.einsum(
        "pd,pd->p", flat_hidden, table[jnp.clip(local, 0, rows - 1)], preferred_element_type=jnp.float32
    )
    return _nll_over_shards(lse, jnp.where(here, picked, 0.0)).reshape(b, length)


def sharded_cross_entropy(
    layout: ParallelLayout, temperature: float = 1.0, exclude_seen: bool = False, backend: str = "reference"
):
    """f(hidden, table, targets, rng) -> scalar, equal to `full_cross_entropy` (with `temperature`: of the
    logits / temperature) on the unpadded table; with `exclude_seen`, f(..., seen=inputs) equal to
    `losses.unseen_cross_entropy` (each position's softmax without its row's earlier items).

    `backend`: the linear-CE op's backend for the full CE. Training passes the default, the XLA reference, on
    every device kind: the Triton binding types its outputs for `shard_map` and is tested there through the
    interpreter, but jax_triton's call inside `shard_map` has not yet run on a GPU (kernels/README.md)."""
    num_items = layout.num_items

    def mean_over_targets(nll, targets):
        mask = targets != 0
        total = jax.lax.psum(jnp.sum(jnp.where(mask, nll, 0.0)), "data")
        count = jax.lax.psum(jnp.sum(mask.astype(jnp.float32)), "data")
        return total / jnp.maximum(count, 1.0)

    def per_shard(hidden, table, targets):
        return mean_over_targets(_local_nll(hidden, table, targets, num_items, backend), targets)

    def per_shard_unseen(hidden, table, targets, seen):
        return mean_over_targets(_local_unseen_nll(hidden, table, targets, seen, num_items, DEFAULT_CHUNK), targets)

    specs = (P("data", None, None), P("model", None), P("data", None))  # hidden, table, targets (and seen)
    full = jax.shard_map(per_shard, mesh=layout.mesh, in_specs=specs, out_specs=P())
    unseen = jax.shard_map(per_shard_unseen, mesh=layout.mesh, in_specs=(*specs, specs[2]), out_specs=P())

    def scaled(hidden):
        return hidden if temperature == 1.0 else hidden / temperature  # (hidden / T) . item = logit / T

    def loss(hidden: Float[Array, "B L D"], table: Float[Array, "I D"], targets: Int[Array, "B L"], rng: Array):
        del rng
        return full(scaled(hidden), layout.fit_rows(table), targets)

    if not exclude_seen:
        return loss

    def loss_of_rows(hidden, table, targets, rng, positions, seen):
        del rng, positions  # the mesh keeps the [B, L] layout: run_epoch packs no positions there
        return unseen(scaled(hidden), layout.fit_rows(table), targets, seen)

    return with_row_items("loss.exclude_seen=true", "loss.exclude_seen=false", loss_of_rows)


def sharded_next_item_loss(config: LossConfig, layout: ParallelLayout):
    """`loss.name` on a mesh: CE from sharded logits; BCE on the unpadded rows (negatives never mesh pad)."""
    if config.name == "ce":
        return sharded_cross_entropy(layout, config.temperature, config.exclude_seen)
    base = next_item_loss(
        config.name, config.num_negatives, gbce_t=config.gbce_t, logq_correction=config.logq_correction
    )
    rows = layout.num_items + 1
    return lambda hidden, table, targets, rng: base(hidden, table[:rows], targets, rng)  # no mesh-pad rows
