"""Pure-JAX linear cross-entropy: softmax CE of hidden @ table^T without materialising [P, I] logits.

Axis legend: P positions, D model dim, I items (table rows), C chunks, K items of one chunk.
The core returns the NLL's two terms, lse_p = logsumexp over the candidate rows [lo, hi) and the target's
logit (0 where a position has none), so that a CE over item-sharded tables combines shards' terms; the
full CE is lse - target logit with candidates [1, I) (row 0 is padding).
Forward: a scan over item chunks with an online log-sum-exp. Backward (custom_vjp): recompute each
chunk's logits from (hidden, table, lse) and accumulate dhidden and dtable, so the peak memory is
O(P × K) whatever I is. When I <= K a single matmul replaces the scan (same custom_vjp, so the backward
still stores no softmax). The CPU/TPU fallback and the oracle of the Triton kernels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from kernels.mesh_axes import vary_like

_F32 = jnp.float32


def _chunked(table: Float[Array, "I D"], chunk: int) -> Float[Array, "C K D"]:
    """The table zero-padded to C*K rows and split into chunks (padded rows are never candidates)."""
    num_items, dim = table.shape
    num_chunks = -(-num_items // chunk)
    padded = jnp.pad(table, ((0, num_chunks * chunk - num_items), (0, 0)))
    return padded.reshape(num_chunks, chunk, dim)  # [C*K, D] -> [C, K, D]


def _chunk_logits(hidden, table_chunk, first_id, bounds) -> Float[Array, "P K"]:
    """fp32 logits of one chunk; rows outside the candidates [lo, hi) are -inf (hi <= I: no table padding)."""
    logits = jnp.einsum("pd,kd->pk", hidden, table_chunk, preferred_element_type=_F32)
    ids = first_id + jnp.arange(table_chunk.shape[0])
    return jnp.where((ids >= bounds[0]) & (ids < bounds[1]), logits, -jnp.inf)


def _logsumexp(hidden, table, bounds, chunk: int) -> Float[Array, " P"]:
    """-inf for a position when there is no candidate at all (an empty shard)."""
    if table.shape[0] <= chunk:  # one matmul: the whole catalogue is one chunk
        return jax.nn.logsumexp(_chunk_logits(hidden, table, 0, bounds), axis=-1)
    chunks = _chunked(table, chunk)

    def step(carry, xs):
        running_max, running_sum = carry
        table_chunk, first_id = xs
        logits = _chunk_logits(hidden, table_chunk, first_id, bounds)
        new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
        # a chunk with no candidate leaves the max at -inf: shift by 0, not by -inf (no NaN)
        shift = jnp.where(jnp.isneginf(new_max), 0.0, new_max)
        running_sum = running_sum * jnp.exp(running_max - shift) + jnp.sum(jnp.exp(logits - shift[:, None]), -1)
        return (new_max, running_sum), None

    p = hidden.shape[0]
    # inside shard_map the carry varies over the mesh axes its operands do (kernels.mesh_axes)
    init = tuple(vary_like(x, hidden, table, bounds) for x in (jnp.full((p,), -jnp.inf, _F32), jnp.zeros((p,), _F32)))
    first_ids = jnp.arange(chunks.shape[0]) * chunk
    (running_max, running_sum), _ = jax.lax.scan(step, init, (chunks, first_ids))
    return running_max + jnp.log(running_sum)


def _target_logit(hidden, table, targets, has_target) -> Float[Array, " P"]:
    # a gathered dot instead of a pick from the logits: no [P, I] index needed
    rows = table[jnp.where(has_target, targets, 0)].astype(_F32)
    return jnp.where(has_target, jnp.einsum("pd,pd->p", hidden.astype(_F32), rows), 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _lse_and_target_logit(hidden, table, targets, has_target, bounds, chunk):
    return _logsumexp(hidden, table, bounds, chunk), _target_logit(hidden, table, targets, has_target)


def _fwd(hidden, table, targets, has_target, bounds, chunk):
    lse = _logsumexp(hidden, table, bounds, chunk)
    return (lse, _target_logit(hidden, table, targets, has_target)), (hidden, table, targets, has_target, bounds, lse)


def _bwd(chunk, residuals, cotangents):
    """d logits = g_lse * softmax + g_target * onehot(target), the softmax recomputed chunk by chunk."""
    hidden, table, targets, has_target, bounds, lse = residuals
    g_lse, g_target = (g.astype(_F32) for g in cotangents)
    g_lse = jnp.where(jnp.isneginf(lse), 0.0, g_lse)  # no candidate: softmax is empty, not exp(-inf + inf)
    g_target = jnp.where(has_target, g_target, 0.0)
    safe = jnp.where(has_target, targets, 0)
    hidden32 = hidden.astype(_F32)

    def chunk_grads(table_chunk, first_id):
        """g_lse * softmax of one chunk against both matmul operands: ([P, D], [K, D]) in fp32."""
        logits = _chunk_logits(hidden, table_chunk, first_id, bounds)
        probs = jnp.exp(logits - jnp.where(jnp.isneginf(lse), 0.0, lse)[:, None]) * g_lse[:, None]
        return probs @ table_chunk.astype(_F32), probs.T @ hidden32

    num_items = table.shape[0]
    if num_items <= chunk:
        d_hidden, d_table = chunk_grads(table, 0)
    else:
        chunks = _chunked(table, chunk)

        def step(d_hidden, xs):
            dh, dt = chunk_grads(*xs)
            return d_hidden + dh, dt

        first_ids = jnp.arange(chunks.shape[0]) * chunk
        init = vary_like(jnp.zeros(hidden.shape, _F32), hidden, table, lse, g_lse, bounds)
        d_hidden, d_table = jax.lax.scan(step, init, (chunks, first_ids))
        d_table = d_table.reshape(-1, table.shape[1])[:num_items]  # [C, K, D] -> [C*K, D] -> [I, D]
    # the onehot(target) term, without a [P, I] one-hot
    d_hidden = d_hidden + g_target[:, None] * table[safe].astype(_F32)
    d_table = d_table.at[safe].add(g_target[:, None] * hidden32)
    return d_hidden.astype(hidden.dtype), d_table.astype(table.dtype), None, None, None


_lse_and_target_logit.defvjp(_fwd, _bwd)


def linear_lse_and_target_logit_reference(
    hidden: Float[Array, "P D"],
    table: Float[Array, "I D"],
    targets: Int[Array, " P"],
    has_target: Bool[Array, " P"],
    bounds: Int[Array, "2"],
    chunk: int,
) -> tuple[Float[Array, " P"], Float[Array, " P"]]:
    """(lse, target logit), fp32: lse over table rows [bounds[0], bounds[1]) (-inf if empty); the logit of
    row targets[p] where has_target[p], else 0. Both differentiable w.r.t. hidden and table."""
    bounds = jnp.clip(jnp.asarray(bounds, jnp.int32), 0, table.shape[0])
    return _lse_and_target_logit(hidden, table, targets.astype(jnp.int32), has_target, bounds, int(chunk))


def linear_cross_entropy_reference(
    hidden: Float[Array, "P D"],
    table: Float[Array, "I D"],
    targets: Int[Array, " P"],
    valid: Bool[Array, " P"],
    chunk: int,
) -> Float[Array, " P"]:
    """Per-position NLL (fp32) of softmax(hidden @ table^T) over items 1..I-1; 0 where masked.

    A position counts iff valid and its target is not 0; the others get NLL 0 and zero gradient.
    """
    mask = valid & (targets != 0)
    bounds = jnp.asarray([1, table.shape[0]], jnp.int32)  # row 0 is padding
    lse, target_logit = linear_lse_and_target_logit_reference(hidden, table, targets, mask, bounds, chunk)
    return jnp.where(mask, lse - target_logit, 0.0)
