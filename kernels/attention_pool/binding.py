"""JAX binding of the Triton attention-pool kernels: a custom_vjp with residuals (q, k, v, bounds, o, lse).

Axis legend: B batch, S key length, N heads, H head dim, HP = H padded to a power of 2 (zero padding
is exact: padded q/k columns add 0 to every score, padded v columns are sliced off).
Attention-probability dropout is not supported by the kernels (the API has no dropout argument).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from kernels.attention.binding import SUPPORTED_DTYPES, padded_head_dim
from kernels.batching import fold_vmap_into_batch
from kernels.triton_launch import launch, next_power_of_2

_KERNELS = "kernels.attention_pool.triton_kernels"


def _pad_head(x: Array, hp: int) -> Array:
    return x if x.shape[-1] == hp else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, hp - x.shape[-1])])


def _block_n(s: int, hp: int) -> int:
    # a [BLOCK_N, HP] fp32 tile of k and one of v per step: keep them at 4K elements
    return max(16, min(next_power_of_2(s), 4096 // hp))


def _forward(q, k, v, kv_start, kv_end, scale, interpret):
    h = q.shape[-1]
    hp = padded_head_dim(h)

    def call(q, k, v, kv_start, kv_end):
        b, n, _ = q.shape
        s = k.shape[1]
        return launch(
            _KERNELS,
            "attention_pool_fwd_kernel",
            grid=(b * n,),
            arrays=(q, k, v, kv_start, kv_end),
            scalars=(s, n, scale),
            out_shapes=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n), jnp.float32)),
            constexprs={"BLOCK_N": _block_n(s, hp), "HEAD": hp},
            interpret=interpret,
            num_warps=4,
            num_stages=2,
        )

    o, lse = fold_vmap_into_batch(call)(_pad_head(q, hp), _pad_head(k, hp), _pad_head(v, hp), kv_start, kv_end)
    return o[..., :h], lse


def _backward(q, k, v, o, do, lse, kv_start, kv_end, scale, interpret):
    h = q.shape[-1]
    hp = padded_head_dim(h)

    def call(q, k, v, o, do, lse, kv_start, kv_end):
        b, n, _ = q.shape
        s = k.shape[1]
        return launch(
            _KERNELS,
            "attention_pool_bwd_kernel",
            grid=(b * n,),
            arrays=(q, k, v, o, do, lse, kv_start, kv_end),
            scalars=(s, n, scale),
            out_shapes=tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (q, k, v)),
            constexprs={"BLOCK_N": _block_n(s, hp), "HEAD": hp},
            interpret=interpret,
            num_warps=4,
            num_stages=1,
        )

    padded = (_pad_head(x, hp) for x in (q, k, v, o, do))
    dq, dk, dv = fold_vmap_into_batch(call)(*padded, lse, kv_start, kv_end)
    return dq[..., :h], dk[..., :h], dv[..., :h]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _attention_pool(q, k, v, kv_start, kv_end, scale, interpret):
    return _forward(q, k, v, kv_start, kv_end, scale, interpret)[0]


def _attention_pool_fwd(q, k, v, kv_start, kv_end, scale, interpret):
    o, lse = _forward(q, k, v, kv_start, kv_end, scale, interpret)
    return o, (q, k, v, kv_start, kv_end, o, lse)


def _attention_pool_bwd(scale, interpret, residuals, do):
    q, k, v, kv_start, kv_end, o, lse = residuals
    dq, dk, dv = _backward(q, k, v, o, do.astype(q.dtype), lse, kv_start, kv_end, scale, interpret)
    return dq, dk, dv, None, None  # integer bounds have no cotangent


_attention_pool.defvjp(_attention_pool_fwd, _attention_pool_bwd)


def attention_pool_triton(
    q: Float[Array, "B N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    scale: float,
    *,
    interpret: bool,
) -> Float[Array, "B N H"]:
    """Fused attention pooling (see kernels.attention_pool) on the GPU or in Triton's CPU interpreter."""
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"Triton attention_pool supports float32, bfloat16 and float16; got {q.dtype}")
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    kv_start, kv_end = kv_start.astype(jnp.int32), kv_end.astype(jnp.int32)
    return _attention_pool(q, k, v, kv_start, kv_end, float(scale), interpret)
