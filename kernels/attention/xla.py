"""Attention in plain XLA with a hand-written backward: the fast CPU/TPU path of `kernels.attention`.

Axis legend: B batch, T query length, S key length, N heads, H head dim.
Same semantics as `reference.py` (which stays the autodiff oracle): key j of row b is visible to query i
iff kv_start[b] <= j < kv_end[b] and, when causal, j <= i; a query with no visible key returns zeros.

Why a custom_vjp: autodiff through the reference's softmax keeps several [B, N, T, S] fp32 intermediates
and emits a chain of broadcasts and reductions over them; on a 2-core CPU that backward took ~45% of a
SASRec training step. The backward here is the flash-attention one, written as whole-matrix XLA ops:
p is recomputed from the saved log-sum-exp, then dv = pᵀ do, ds = p (do vᵀ - rowsum(do o)),
dq = ds k · scale, dk = dsᵀ q · scale: four matmuls and one fused elementwise pass.
With attention dropout (`keep`, saved for the backward) the weighted sum uses p' = p ⊙ keep: dv = p'ᵀ do and
ds = p ⊙ (keep ⊙ do vᵀ - rowsum(do o)); rowsum(do o) is still rowsum(p ⊙ dp), since o = p' v.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from kernels.attention.reference import attention_reference_with_lse, visible_keys


def _scores(q, k, kv_start, kv_end, causal: bool, scale: float) -> tuple[Array, Array]:
    """fp32 scaled scores [B, N, T, S] and the visibility mask [B, 1, T, S]."""
    s = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32) * scale
    return s, visible_keys(kv_start, kv_end, q.shape[1], k.shape[1], causal)


def _forward(q, k, v, kv_start, kv_end, keep, causal: bool, scale: float):
    """o and the log-sum-exp, from the reference's forward (the custom_vjp's forward is never differentiated);
    empty rows get lse = +inf, so the backward's exp(s - lse) is 0 there."""
    o, lse = attention_reference_with_lse(q, k, v, kv_start, kv_end, causal, scale, keep)
    return o, jnp.where(jnp.isneginf(lse), jnp.inf, lse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def attention_xla(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    keep: Float[Array, "B N T S"] | None,
    causal: bool,
    scale: float,
) -> Float[Array, "B T N H"]:
    """`keep`: attention-dropout multipliers of the weights (reference.dropout_keep), or None."""
    return _forward(q, k, v, kv_start, kv_end, keep, causal, scale)[0]


def _attention_fwd(q, k, v, kv_start, kv_end, keep, causal, scale):
    o, lse = _forward(q, k, v, kv_start, kv_end, keep, causal, scale)
    return o, (q, k, v, kv_start, kv_end, keep, o, lse)


def _attention_bwd(causal, scale, residuals, do):
    q, k, v, kv_start, kv_end, keep, o, lse = residuals
    s, mask = _scores(q, k, kv_start, kv_end, causal, scale)
    p = jnp.where(mask, jnp.exp(s - lse[..., None]), 0.0)  # [B, N, T, S]; lse = +inf on empty rows gives 0
    do32 = do.astype(jnp.float32)
    dropped = p if keep is None else p * keep
    dv = jnp.einsum("bnts,btnh->bsnh", dropped, do32)
    dp = jnp.einsum("btnh,bsnh->bnts", do32, v, preferred_element_type=jnp.float32)
    if keep is not None:
        dp = dp * keep
    delta = jnp.einsum("btnh,btnh->bnt", do32, o.astype(jnp.float32))  # rowsum(p * dp) = rowsum(do * o)
    ds = p * (dp - delta[..., None]) * scale
    dq = jnp.einsum("bnts,bsnh->btnh", ds, k, preferred_element_type=jnp.float32)
    dk = jnp.einsum("bnts,btnh->bsnh", ds, q, preferred_element_type=jnp.float32)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None, None


attention_xla.defvjp(_attention_fwd, _attention_bwd)
