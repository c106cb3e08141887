"""Pure-JAX linear cross-entropy: softmax CE of hidden @ table^T without materialising [P, I] logits.

Axis legend: P positions, D model dim, I items (row 0 = padding, never a candidate), C chunks, K items
of one chunk. Forward: a scan over item chunks with an online log-sum-exp. Backward (custom_vjp):
recompute each chunk's logits from (hidden, table, lse) and accumulate dhidden and dtable, so the
peak memory is O(P × K) whatever I is. When I <= K a single matmul replaces the scan (same custom_vjp,
so the backward still stores no softmax). The CPU/TPU fallback and the oracle of the Triton kernels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

_F32 = jnp.float32


def _chunked(table: Float[Array, "I D"], chunk: int) -> Float[Array, "C K D"]:
    """The table zero-padded to C*K rows and split into chunks (padded rows are masked as non-items)."""
    num_items, dim = table.shape
    num_chunks = -(-num_items // chunk)
    padded = jnp.pad(table, ((0, num_chunks * chunk - num_items), (0, 0)))
    return padded.reshape(num_chunks, chunk, dim)  # [C*K, D] -> [C, K, D]


def _chunk_logits(hidden, table_chunk, first_id, num_items: int) -> Float[Array, "P K"]:
    """fp32 logits of one chunk; padding (id 0) and table-padding rows (id >= I) are -inf."""
    logits = jnp.einsum("pd,kd->pk", hidden, table_chunk, preferred_element_type=_F32)
    ids = first_id + jnp.arange(table_chunk.shape[0])
    return jnp.where((ids == 0) | (ids >= num_items), -jnp.inf, logits)


def _target_logit(hidden, table, safe_targets) -> Float[Array, " P"]:
    # a gathered dot instead of a pick from the logits: no [P, I] index needed
    return jnp.einsum("pd,pd->p", hidden.astype(_F32), table[safe_targets].astype(_F32))


def _logsumexp(hidden, table, chunk: int) -> Float[Array, " P"]:
    num_items = table.shape[0]
    if num_items <= chunk:  # one matmul: the whole catalogue is one chunk
        return jax.nn.logsumexp(_chunk_logits(hidden, table, 0, num_items), axis=-1)
    chunks = _chunked(table, chunk)

    def step(carry, xs):
        running_max, running_sum = carry
        table_chunk, first_id = xs
        logits = _chunk_logits(hidden, table_chunk, first_id, num_items)
        new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
        # a chunk of padding only (chunk 1 when K = 1) leaves the max at -inf: shift by 0, not by -inf
        shift = jnp.where(jnp.isneginf(new_max), 0.0, new_max)
        running_sum = running_sum * jnp.exp(running_max - shift) + jnp.sum(jnp.exp(logits - shift[:, None]), -1)
        return (new_max, running_sum), None

    p = hidden.shape[0]
    init = (jnp.full((p,), -jnp.inf, _F32), jnp.zeros((p,), _F32))
    first_ids = jnp.arange(chunks.shape[0]) * chunk
    (running_max, running_sum), _ = jax.lax.scan(step, init, (chunks, first_ids))
    return running_max + jnp.log(running_sum)


def _nll_and_lse(hidden, table, targets, mask, chunk):
    safe = jnp.where(mask, targets, 1)  # masked positions read item 1 and are zeroed below
    lse = _logsumexp(hidden, table, chunk)
    return jnp.where(mask, lse - _target_logit(hidden, table, safe), 0.0), lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _linear_cross_entropy(hidden, table, targets, mask, chunk):
    return _nll_and_lse(hidden, table, targets, mask, chunk)[0]


def _fwd(hidden, table, targets, mask, chunk):
    nll, lse = _nll_and_lse(hidden, table, targets, mask, chunk)
    return nll, (hidden, table, targets, mask, lse)


def _bwd(chunk, residuals, g):
    """d nll_p = g_p (softmax_p - onehot(target_p)) on recomputed logits; masked rows get g = 0."""
    hidden, table, targets, mask, lse = residuals
    num_items = table.shape[0]
    g = jnp.where(mask, g.astype(_F32), 0.0)
    safe = jnp.where(mask, targets, 1)
    hidden32 = hidden.astype(_F32)

    def chunk_grads(table_chunk, first_id):
        """g * softmax of one chunk against both matmul operands: ([P, D], [K, D]) in fp32."""
        probs = jnp.exp(_chunk_logits(hidden, table_chunk, first_id, num_items) - lse[:, None]) * g[:, None]
        return probs @ table_chunk.astype(_F32), probs.T @ hidden32

    if num_items <= chunk:
        d_hidden, d_table = chunk_grads(table, 0)
    else:
        chunks = _chunked(table, chunk)

        def step(d_hidden, xs):
            dh, dt = chunk_grads(*xs)
            return d_hidden + dh, dt

        first_ids = jnp.arange(chunks.shape[0]) * chunk
        d_hidden, d_table = jax.lax.scan(step, jnp.zeros(hidden.shape, _F32), (chunks, first_ids))
        d_table = d_table.reshape(-1, table.shape[1])[:num_items]  # [C, K, D] -> [C*K, D] -> [I, D]
    # the -onehot(target) term, without a [P, I] one-hot
    d_hidden = d_hidden - g[:, None] * table[safe].astype(_F32)
    d_table = d_table.at[safe].add(-g[:, None] * hidden32)
    return d_hidden.astype(hidden.dtype), d_table.astype(table.dtype), None, None


_linear_cross_entropy.defvjp(_fwd, _bwd)


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
    return _linear_cross_entropy(hidden, table, targets.astype(jnp.int32), mask, int(chunk))
