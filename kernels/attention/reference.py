"""Pure-JAX attention: the CPU/TPU fallback and the oracle every kernel is tested against.

Axis legend: B batch, T query length, S key length, N heads, H head dim.
Key j of row b is visible to query i iff kv_start[b] <= j < kv_end[b] and, when causal, j <= i.
A query that sees no key returns exact zeros (and zero gradients), never NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def visible_keys(
    kv_start: Int[Array, " B"], kv_end: Int[Array, " B"], t: int, s: int, causal: bool
) -> Bool[Array, "B 1 T S"]:
    """Boolean visibility of key j to query i, broadcastable over heads."""
    j = jnp.arange(s)
    in_bounds = (j[None, :] >= kv_start[:, None]) & (j[None, :] < kv_end[:, None])  # [B, S]
    mask = jnp.broadcast_to(in_bounds[:, None, None, :], (kv_start.shape[0], 1, t, s))
    if causal:
        i = jnp.arange(t)
        mask = mask & (j[None, :] <= i[:, None])[None, None]
    return mask


def attention_reference_with_lse(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    causal: bool,
    scale: float,
) -> tuple[Float[Array, "B T N H"], Float[Array, "B N T"]]:
    """Attention output and the fp32 log-sum-exp of the scaled scores (-inf for empty rows)."""
    t, s = q.shape[1], k.shape[1]
    scores = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32) * scale
    mask = visible_keys(kv_start, kv_end, t, s, causal)
    scores = jnp.where(mask, scores, -jnp.inf)
    row_max = jnp.max(scores, axis=-1, keepdims=True)
    # softmax is shift-invariant, so the shift carries no gradient; empty rows shift by 0
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    p = jnp.exp(scores - row_max)  # masked keys: exp(-inf) = 0
    denom = jnp.sum(p, axis=-1, keepdims=True)
    p = p / jnp.where(denom > 0, denom, 1.0)
    out = jnp.einsum("bnts,bsnh->btnh", p, v.astype(jnp.float32))
    lse = jnp.where(denom[..., 0] > 0, jnp.log(denom[..., 0]) + row_max[..., 0], -jnp.inf)
    return out.astype(q.dtype), lse


def attention_reference(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    causal: bool,
    scale: float,
) -> Float[Array, "B T N H"]:
    return attention_reference_with_lse(q, k, v, kv_start, kv_end, causal, scale)[0]
