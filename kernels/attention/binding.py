"""JAX binding of the Triton attention kernels: a custom_vjp over the fused forward and backward.

Axis legend: B batch, T query length, S key length, N heads, H head dim, HEAD = H rounded up to a
power of 2 >= 16 (tl.dot's minimum), the kernels' tile width: they mask columns H..HEAD-1, so H = 50
runs on the unpadded [.., 50] arrays with no pad or slice pass.
Residuals are (q, k, v, kv_start, kv_end, o, lse); the backward recomputes the probabilities from lse.
Attention-probability dropout is not supported by the kernels (the API has no dropout argument).
Grids put B*N on axis 0: CUDA caps grid axes 1 and 2 at 65,535, and B*N grows with the batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from kernels.attention.block_configs import backward_config, forward_config
from kernels.batching import fold_vmap_into_batch
from kernels.triton_launch import cdiv, launch, next_power_of_2

_KERNELS = "kernels.attention.triton_kernels"
SUPPORTED_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def padded_head_dim(h: int) -> int:
    return max(16, next_power_of_2(h))


def _meta(q, causal: bool, interpret: bool, block_m: int, block_n: int) -> dict:
    """Constexprs shared by the forward, dK/dV and dQ kernels."""
    return {
        "CAUSAL": causal,
        "IEEE": q.dtype == jnp.float32,
        "UPCAST": interpret and q.dtype != jnp.float32,
        "BLOCK_M": block_m,
        "BLOCK_N": block_n,
        "H": q.shape[-1],
        "HEAD": padded_head_dim(q.shape[-1]),
    }


def _forward(q, k, v, kv_start, kv_end, causal: bool, scale: float, interpret: bool):
    """o [B,T,N,H] and lse [B,N,T] (fp32)."""

    def call(q, k, v, kv_start, kv_end):
        b, t, n, h = q.shape
        s = k.shape[1]
        cfg = forward_config(q.dtype, padded_head_dim(h), t, s)
        return launch(
            _KERNELS,
            "attention_fwd_kernel",
            grid=(b * n, cdiv(t, cfg.block_m)),
            arrays=(q, k, v, kv_start, kv_end),
            # jax-triton types a Python float as fp64: scale goes in as fp32
            scalars=(t, s, n, np.float32(scale)),
            out_shapes=(
                jax.ShapeDtypeStruct(q.shape, q.dtype),
                jax.ShapeDtypeStruct((b, n, t), jnp.float32),
            ),
            constexprs=_meta(q, causal, interpret, cfg.block_m, cfg.block_n),
            interpret=interpret,
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )

    return fold_vmap_into_batch(call)(q, k, v, kv_start, kv_end)


def _backward(q, k, v, o, do, lse, kv_start, kv_end, causal: bool, scale: float, interpret: bool):
    """dq, dk, dv via three kernels: delta, dK/dV over query blocks, dQ over key blocks."""

    def call(q, k, v, o, do, lse, kv_start, kv_end):
        b, t, n, h = q.shape
        s = k.shape[1]
        cfg = backward_config(q.dtype, padded_head_dim(h), t, s)
        common = {"interpret": interpret, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
        (delta,) = launch(
            _KERNELS,
            "attention_bwd_preprocess_kernel",
            grid=(b * n, cdiv(t, cfg.block_m)),
            arrays=(o, do),
            scalars=(t, n),
            out_shapes=(jax.ShapeDtypeStruct((b, n, t), jnp.float32),),
            constexprs={"BLOCK_M": cfg.block_m, "H": h, "HEAD": padded_head_dim(h)},
            **common,
        )
        meta = _meta(q, causal, interpret, cfg.block_m, cfg.block_n)
        scalars = (t, s, n, np.float32(scale))
        dk, dv = launch(
            _KERNELS,
            "attention_bwd_dkdv_kernel",
            grid=(b * n, cdiv(s, cfg.block_n)),
            arrays=(q, k, v, do, lse, delta, kv_start, kv_end),
            scalars=scalars,
            out_shapes=(jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
            constexprs=meta,
            **common,
        )
        (dq,) = launch(
            _KERNELS,
            "attention_bwd_dq_kernel",
            grid=(b * n, cdiv(t, cfg.block_m)),
            arrays=(q, k, v, do, lse, delta, kv_start, kv_end),
            scalars=scalars,
            out_shapes=(jax.ShapeDtypeStruct(q.shape, q.dtype),),
            constexprs=meta,
            **common,
        )
        return dq, dk, dv

    return fold_vmap_into_batch(call)(q, k, v, o, do, lse, kv_start, kv_end)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _attention(q, k, v, kv_start, kv_end, causal, scale, interpret):
    return _forward(q, k, v, kv_start, kv_end, causal, scale, interpret)[0]


def _attention_fwd(q, k, v, kv_start, kv_end, causal, scale, interpret):
    o, lse = _forward(q, k, v, kv_start, kv_end, causal, scale, interpret)
    return o, (q, k, v, kv_start, kv_end, o, lse)


def _attention_bwd(causal, scale, interpret, residuals, do):
    q, k, v, kv_start, kv_end, o, lse = residuals
    dq, dk, dv = _backward(q, k, v, o, do.astype(q.dtype), lse, kv_start, kv_end, causal, scale, interpret)
    return dq, dk, dv, None, None  # integer bounds have no cotangent


_attention.defvjp(_attention_fwd, _attention_bwd)


def attention_triton(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    causal: bool,
    scale: float,
    *,
    interpret: bool,
) -> Float[Array, "B T N H"]:
    """Fused attention (see kernels.attention): Triton on the GPU, or Triton's interpreter on the CPU."""
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"Triton attention supports float32, bfloat16 and float16; got {q.dtype}")
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    return _attention(
        q, k, v, kv_start.astype(jnp.int32), kv_end.astype(jnp.int32), bool(causal), float(scale), interpret
    )


def attention_triton_with_lse(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    causal: bool,
    scale: float,
    *,
    interpret: bool,
) -> tuple[Float[Array, "B T N H"], Float[Array, "B N T"]]:
    """Forward only, also returning the fp32 log-sum-exp residual (for tests against the reference)."""
    return _forward(q, k, v, kv_start.astype(jnp.int32), kv_end.astype(jnp.int32), causal, scale, interpret)
