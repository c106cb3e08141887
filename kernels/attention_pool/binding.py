"""JAX binding of the Triton attention-pool kernels: a custom_vjp with residuals (q, k, v, bounds, o, lse).

Axis legend: B batch, S key length, N heads, H head dim, HEAD = H rounded up to a power of 2, the
kernels' tile width (they mask columns H..HEAD-1: no pad or slice pass for H = 50).
Attention-probability dropout is not supported by the kernels (the API has no dropout argument).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from kernels.attention.binding import SUPPORTED_DTYPES, padded_head_dim
from kernels.batching import fold_vmap_into_batch
from kernels.triton_launch import launch, next_power_of_2

_KERNELS = "kernels.attention_pool.triton_kernels"


def _block_n(s: int, head: int) -> int:
    # a [BLOCK_N, HEAD] fp32 tile of k and one of v per step: keep them at 4K elements
    return max(16, min(next_power_of_2(s), 4096 // head))


def _constexprs(s: int, h: int) -> dict:
    head = padded_head_dim(h)
    return {"BLOCK_N": _block_n(s, head), "H": h, "HEAD": head}


def _forward(q, k, v, kv_start, kv_end, scale, interpret):
    def call(q, k, v, kv_start, kv_end):
        b, n, h = q.shape
        s = k.shape[1]
        return launch(
            _KERNELS,
            "attention_pool_fwd_kernel",
            grid=(b * n,),
            arrays=(q, k, v, kv_start, kv_end),
            scalars=(s, n, np.float32(scale)),  # jax-triton types a Python float as fp64
            out_shapes=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, n), jnp.float32)),
            constexprs=_constexprs(s, h),
            interpret=interpret,
            num_warps=4,
            num_stages=2,
        )

    return fold_vmap_into_batch(call)(q, k, v, kv_start, kv_end)


def _backward(q, k, v, o, do, lse, kv_start, kv_end, scale, interpret):
    def call(q, k, v, o, do, lse, kv_start, kv_end):
        b, n, h = q.shape
        s = k.shape[1]
        return launch(
            _KERNELS,
            "attention_pool_bwd_kernel",
            grid=(b * n,),
            arrays=(q, k, v, o, do, lse, kv_start, kv_end),
            scalars=(s, n, np.float32(scale)),
            out_shapes=tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (q, k, v)),
            constexprs=_constexprs(s, h),
            interpret=interpret,
            num_warps=4,
            num_stages=2,
        )

    return fold_vmap_into_batch(call)(q, k, v, o, do, lse, kv_start, kv_end)


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
