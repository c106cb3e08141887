"""Pure-JAX attention: the CPU/TPU fallback and the oracle every kernel is tested against.

Axis legend: B batch, T query length, S key length, N heads, H head dim.
Key j of row b is visible to query i iff kv_start[b] <= j < kv_end[b] and, when causal, j <= i.
A query that sees no key returns exact zeros (and zero gradients), never NaN.
Attention dropout: `keep`, a [B, N, T, S] multiplier (0 or 1 / keep probability, from `dropout_keep`), scales
the softmax weights before the weighted sum, as torch.nn.MultiheadAttention's `dropout` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from kernels.dropout_bits import drop_threshold, keep_scale, kept


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


def dropout_keep(key: Array, shape: tuple[int, ...], rate: float) -> Float[Array, "..."]:
    """Inverted-dropout multipliers: 0 with probability ~rate (16-bit draws, kernels/dropout_bits.py), else
    1 / the keep probability."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"attention dropout rate {rate} is not in [0, 1)")
    threshold = drop_threshold(rate)
    return jnp.where(kept(key, shape, threshold), jnp.float32(keep_scale(threshold)), 0.0)


def attention_reference_with_lse(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    causal: bool,
    scale: float,
    keep: Float[Array, "B N T S"] | None = None,
) -> tuple[Float[Array, "B T N H"], Float[Array, "B N T"]]:
    """Attention output and the fp32 log-sum-exp of the scaled scores (-inf for empty rows); `keep`: the
    attention-dropout multipliers of the weights (the log-sum-exp is the undropped softmax's)."""
    t, s = q.shape[1], k.shape[1]
    # [B, T, N, H] -> [B, N, T, H]: heads become a batch dim, so both products are plain batched matmuls
    qh, kh, vh = (x.swapaxes(1, 2).astype(jnp.float32) for x in (q, k, v))
    scores = (qh @ kh.swapaxes(-1, -2)) * scale
    mask = visible_keys(kv_start, kv_end, t, s, causal)
    scores = jnp.where(mask, scores, -jnp.inf)
    row_max = jnp.max(scores, axis=-1, keepdims=True)
    # softmax is shift-invariant, so the shift carries no gradient; empty rows shift by 0
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    p = jnp.exp(scores - row_max)  # masked keys: exp(-inf) = 0
    denom = jnp.sum(p, axis=-1, keepdims=True)
    p = p / jnp.where(denom > 0, denom, 1.0)
    if keep is not None:
        p = p * keep
    out = (p @ vh).swapaxes(1, 2)  # [B, N, T, H] -> [B, T, N, H]
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
    keep: Float[Array, "B N T S"] | None = None,
) -> Float[Array, "B T N H"]:
    return attention_reference_with_lse(q, k, v, kv_start, kv_end, causal, scale, keep)[0]
