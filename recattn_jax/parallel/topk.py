"""Full-ranking scores over a large or item-sharded catalogue, in chunks of items.

Peak memory is bounded by [users, chunk] scores: the table is scanned `chunk` rows at a time, keeping
a running rank count (evaluation) or a running top-K (recommendation). On a mesh each `model` shard
scans its own rows; ranks add up across shards (psum), top-Ks are gathered (K per shard) and merged.
Candidates are items 1..I that are neither in the user's `seen` history (0-padded) nor the target.
Axis legend: B users, D model dim, R item rows (of one shard), C chunk, K top-K, P history length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from recattn_jax.parallel.mesh import ParallelLayout


def _in_chunk(seen: Int[Array, "B P"], start, chunk: int) -> Array:
    """[B, C] mask of the history items among local rows start .. start+C-1 (a scatter of P items per user)."""
    local = seen - start
    local = jnp.where((local >= 0) & (local < chunk), local, chunk)  # outside the chunk: dropped below
    rows = jnp.arange(seen.shape[0])[:, None]
    return jnp.zeros((seen.shape[0], chunk), bool).at[rows, local].set(True, mode="drop")


def _scan_chunks(user, table, chunk: int, offset, num_items: int, seen, init, update):
    """Fold `update(carry, scores [B, C], ids [C], candidate [B, C])` over the table's rows in chunks; each row
    is a candidate (when not in `seen`) in exactly one chunk, and `seen=None` makes every row one."""
    rows = table.shape[0]
    chunk = min(chunk, rows)
    n_chunks = -(-rows // chunk)
    local_seen = None if seen is None else seen - offset  # history ids in this shard's row numbering

    def body(c, carry):
        start = jnp.minimum(c * chunk, rows - chunk)  # the last chunk overlaps the previous one...
        local = start + jnp.arange(chunk)
        ids = offset + local
        block = jax.lax.dynamic_slice_in_dim(table, start, chunk)  # [C, D]
        scores = jnp.einsum("bd,cd->bc", user, block, preferred_element_type=jnp.float32)
        fresh = (local >= c * chunk) & (ids >= 1) & (ids <= num_items)  # ...whose rows are skipped here
        candidate = fresh[None, :] if seen is None else fresh[None, :] & ~_in_chunk(local_seen, start, chunk)
        return update(carry, scores, ids, candidate)

    carry = body(0, init)  # the first chunk outside the loop gives the carry its sharded (varying) type
    return jax.lax.fori_loop(1, n_chunks, body, carry) if n_chunks > 1 else carry


def chunked_target_scores(user, table, targets, *, chunk: int, num_items: int, offset=0):
    """Each target's score as the chunk scan computes it ([B]; 0 where this shard does not hold the target): a
    score from another product (a [B, D] row-wise dot) can differ from the chunk matmul's in the last bit, and
    then an item whose row equals the target's would no longer tie with it."""

    def update(total, scores, ids, candidate):
        return total + jnp.sum(jnp.where(candidate & (ids[None, :] == targets[:, None]), scores, 0.0), axis=1)

    init = jnp.zeros(user.shape[0], jnp.float32)
    return _scan_chunks(user, table, chunk, offset, num_items, None, init, update)


def chunked_ranks(user, table, targets, seen, *, chunk: int, num_items: int, offset=0, target_score=None):
    """0-based rank of each target among its candidates (ties count against the target): [B].

    `target_score`: the targets' scores from `chunked_target_scores` with the same chunk (the scan's own
    products, so that equal rows tie exactly; summed over the shards on a mesh); None computes them here."""
    if target_score is None:
        target_score = chunked_target_scores(user, table, targets, chunk=chunk, num_items=num_items, offset=offset)
    target_score = jnp.where(jnp.isnan(target_score), -jnp.inf, target_score)  # NaN never ranks first

    def update(count, scores, ids, candidate):
        scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
        beats = candidate & (ids[None, :] != targets[:, None]) & (scores >= target_score[:, None])
        return count + jnp.sum(beats, axis=1, dtype=jnp.int32)

    init = jnp.zeros(user.shape[0], jnp.int32)
    return _scan_chunks(user, table, chunk, offset, num_items, seen, init, update)


def chunked_topk(user, table, seen, k: int, *, chunk: int, num_items: int, offset=0):
    """The K best candidates per user: (scores [B, K], ids [B, K]), best first, ties to the lower id."""

    def update(carry, scores, ids, candidate):
        best, best_ids = carry
        scores = jnp.where(candidate, scores, -jnp.inf)
        both = jnp.concatenate([best, scores], axis=1)  # earlier (lower) ids first: top_k keeps them on ties
        both_ids = jnp.concatenate([best_ids, jnp.broadcast_to(ids, scores.shape)], axis=1)
        best, pick = jax.lax.top_k(both, k)
        return best, jnp.take_along_axis(both_ids, pick, axis=1)

    b = user.shape[0]
    init = (jnp.full((b, k), -jnp.inf, jnp.float32), jnp.zeros((b, k), jnp.int32))
    return _scan_chunks(user, table, chunk, offset, num_items, seen, init, update)


def sharded_ranks(layout: ParallelLayout, chunk: int | None):
    """f(user [B, D], table [rows, D], targets [B], seen [B, P]) -> ranks [B]; users over `data`, rows over `model`."""
    num_items = layout.num_items

    def per_shard(user, table, targets, seen):
        rows = table.shape[0]
        offset = jax.lax.axis_index("model") * rows
        chunk_rows = chunk or rows
        mine = chunked_target_scores(user, table, targets, chunk=chunk_rows, num_items=num_items, offset=offset)
        mine = jax.lax.psum(mine, "model")  # the target's score, from the shard that holds it
        count = chunked_ranks(
            user, table, targets, seen, chunk=chunk_rows, num_items=num_items, offset=offset, target_score=mine
        )
        return jax.lax.psum(count, "model")

    ranks = jax.shard_map(
        per_shard,
        mesh=layout.mesh,
        in_specs=(P("data", None), P("model", None), P("data"), P("data", None)),
        out_specs=P("data"),
    )
    return lambda user, table, targets, seen: ranks(user, layout.fit_rows(table), targets, seen)


def sharded_topk(layout: ParallelLayout, k: int, chunk: int | None):
    """f(user, table, seen) -> (scores [B, K], ids [B, K]): a top-K per `model` shard, then merged."""
    num_items = layout.num_items

    def per_shard(user, table, seen):
        rows = table.shape[0]
        offset = jax.lax.axis_index("model") * rows
        best, ids = chunked_topk(user, table, seen, k, chunk=chunk or rows, num_items=num_items, offset=offset)
        # [M, b, K] in shard order (ascending ids) -> [b, M*K], so ties still go to the lower id
        best = jnp.moveaxis(jax.lax.all_gather(best, "model"), 0, 1).reshape(best.shape[0], -1)
        ids = jnp.moveaxis(jax.lax.all_gather(ids, "model"), 0, 1).reshape(ids.shape[0], -1)
        best, pick = jax.lax.top_k(best, k)
        return best, jnp.take_along_axis(ids, pick, axis=1)

    topk = jax.shard_map(
        per_shard,
        mesh=layout.mesh,
        in_specs=(P("data", None), P("model", None), P("data", None)),
        out_specs=(P("data", None), P("data", None)),
        check_vma=False,  # all_gather + top_k leave the result equal on every `model` shard; no autodiff here
    )
    return lambda user, table, seen: topk(user, layout.fit_rows(table), seen)


def item_ranks(chunk: int | None, layout: ParallelLayout | None):
    """The chunked / sharded rank function f(user, table, targets, seen), or None for all items at once."""
    if layout is not None:
        return sharded_ranks(layout, chunk)
    if chunk:
        return lambda user, table, targets, seen: chunked_ranks(
            user, table, targets, seen, chunk=chunk, num_items=table.shape[0] - 1
        )
    return None


def item_topk(k: int, chunk: int | None, layout: ParallelLayout | None):
    """The chunked / sharded top-K function f(user, table, seen), or None for all items at once."""
    if layout is not None:
        return sharded_topk(layout, k, chunk)
    if chunk:
        return lambda user, table, seen: chunked_topk(user, table, seen, k, chunk=chunk, num_items=table.shape[0] - 1)
    return None


def full_topk(
    scores: Float[Array, "B I"], seen: Int[Array, "B P"], k: int, num_items: int
) -> tuple[Float[Array, "B K"], Int[Array, "B K"]]:
    """The unchunked oracle: top-K over a whole [B, I+1] score matrix with history and padding masked."""
    rows = jnp.arange(scores.shape[0])[:, None]
    masked = scores[:, : num_items + 1].at[rows, seen].set(-jnp.inf).at[:, 0].set(-jnp.inf)
    best, ids = jax.lax.top_k(masked, k)
    return best, ids.astype(jnp.int32)
