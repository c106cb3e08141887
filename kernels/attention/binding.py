"""JAX binding of the Triton attention kernels: a custom_vjp over the fused forward and backward.

Axis legend: B batch, T query length, S key length, N heads, H head dim, HP = H padded to a power of 2.
Residuals are (q, k, v, kv_start, kv_end, o, lse); the backward recomputes the probabilities from lse.
The head dim is zero-padded to a power of two (>= 16, tl.dot's minimum) inside this file: padded
q/k columns add 0 to every score and padded v columns produce output columns that are sliced off.
Attention-probability dropout is not supported by the kernels (the API has no dropout argument).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from kernels.batching import fold_vmap_into_batch
from kernels.triton_launch import cdiv, launch, next_power_of_2

_KERNELS = "kernels.attention.triton_kernels"
SUPPORTED_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def padded_head_dim(h: int) -> int:
    return max(16, next_power_of_2(h))


def _block_m(t: int, cap: int) -> int:
    return min(cap, max(16, next_power_of_2(t)))


def _fwd_config(t: int, s: int, hp: int, dtype) -> dict:
    # fp32 tiles take twice the registers/shared memory of bf16 ones, so they stay smaller
    wide = jnp.dtype(dtype).itemsize == 2
    cap_m = 128 if wide and hp <= 64 else 64
    cap_n = 64 if hp <= 64 or wide else 32
    return {
        "BLOCK_M": _block_m(t, cap_m),
        "BLOCK_N": _block_m(s, cap_n),
        "num_warps": 8 if _block_m(t, cap_m) * hp >= 128 * 64 else 4,
        "num_stages": 2,
    }


def _bwd_config(t: int, s: int, hp: int, dtype) -> dict:
    cap = 64 if hp <= 64 and jnp.dtype(dtype).itemsize == 2 else 32
    return {"BLOCK_M": _block_m(t, cap), "BLOCK_N": _block_m(s, cap), "num_warps": 4, "num_stages": 1}


def _pad_head(x: Array, hp: int) -> Array:
    return x if x.shape[-1] == hp else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, hp - x.shape[-1])])


def _forward_padded(q, k, v, kv_start, kv_end, *, causal: bool, scale: float, interpret: bool):
    """o [B,T,N,HP] and lse [B,N,T] from head-padded inputs."""

    def call(q, k, v, kv_start, kv_end):
        b, t, n, hp = q.shape
        s = k.shape[1]
        cfg = _fwd_config(t, s, hp, q.dtype)
        return launch(
            _KERNELS,
            "attention_fwd_kernel",
            grid=(cdiv(t, cfg["BLOCK_M"]), b * n),
            arrays=(q, k, v, kv_start, kv_end),
            scalars=(t, s, n, scale),
            out_shapes=(
                jax.ShapeDtypeStruct(q.shape, q.dtype),
                jax.ShapeDtypeStruct((b, n, t), jnp.float32),
            ),
            constexprs={
                "CAUSAL": causal,
                "IEEE": q.dtype == jnp.float32,
                "UPCAST": interpret and q.dtype != jnp.float32,
                "BLOCK_M": cfg["BLOCK_M"],
                "BLOCK_N": cfg["BLOCK_N"],
                "HEAD": hp,
            },
            interpret=interpret,
            num_warps=cfg["num_warps"],
            num_stages=cfg["num_stages"],
        )

    return fold_vmap_into_batch(call)(q, k, v, kv_start, kv_end)


def _backward_padded(q, k, v, o, do, lse, kv_start, kv_end, *, causal: bool, scale: float, interpret: bool):
    """dq, dk, dv (head-padded) via three kernels: delta, dK/dV over query blocks, dQ over key blocks."""

    def call(q, k, v, o, do, lse, kv_start, kv_end):
        b, t, n, hp = q.shape
        s = k.shape[1]
        cfg = _bwd_config(t, s, hp, q.dtype)
        common = {"interpret": interpret, "num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"]}
        (delta,) = launch(
            _KERNELS,
            "attention_bwd_preprocess_kernel",
            grid=(cdiv(t, cfg["BLOCK_M"]), b * n),
            arrays=(o, do),
            scalars=(t, n),
            out_shapes=(jax.ShapeDtypeStruct((b, n, t), jnp.float32),),
            constexprs={"BLOCK_M": cfg["BLOCK_M"], "HEAD": hp},
            **common,
        )
        meta = {
            "CAUSAL": causal,
            "IEEE": q.dtype == jnp.float32,
            "UPCAST": interpret and q.dtype != jnp.float32,
            "BLOCK_M": cfg["BLOCK_M"],
            "BLOCK_N": cfg["BLOCK_N"],
            "HEAD": hp,
        }
        dk, dv = launch(
            _KERNELS,
            "attention_bwd_dkdv_kernel",
            grid=(cdiv(s, cfg["BLOCK_N"]), b * n),
            arrays=(q, k, v, do, lse, delta, kv_start, kv_end),
            scalars=(t, s, n, scale),
            out_shapes=(jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
            constexprs=meta,
            **common,
        )
        (dq,) = launch(
            _KERNELS,
            "attention_bwd_dq_kernel",
            grid=(cdiv(t, cfg["BLOCK_M"]), b * n),
            arrays=(q, k, v, do, lse, delta, kv_start, kv_end),
            scalars=(t, s, n, scale),
            out_shapes=(jax.ShapeDtypeStruct(q.shape, q.dtype),),
            constexprs=meta,
            **common,
        )
        return dq, dk, dv

    return fold_vmap_into_batch(call)(q, k, v, o, do, lse, kv_start, kv_end)


def _forward(q, k, v, kv_start, kv_end, causal, scale, interpret):
    hp = padded_head_dim(q.shape[-1])
    o, lse = _forward_padded(
        _pad_head(q, hp), _pad_head(k, hp), _pad_head(v, hp), kv_start, kv_end,
        causal=causal, scale=scale, interpret=interpret,
    )  # fmt: skip
    return o[..., : q.shape[-1]], lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _attention(q, k, v, kv_start, kv_end, causal, scale, interpret):
    return _forward(q, k, v, kv_start, kv_end, causal, scale, interpret)[0]


def _attention_fwd(q, k, v, kv_start, kv_end, causal, scale, interpret):
    o, lse = _forward(q, k, v, kv_start, kv_end, causal, scale, interpret)
    return o, (q, k, v, kv_start, kv_end, o, lse)


def _attention_bwd(causal, scale, interpret, residuals, do):
    q, k, v, kv_start, kv_end, o, lse = residuals
    h = q.shape[-1]
    hp = padded_head_dim(h)
    dq, dk, dv = _backward_padded(
        *(_pad_head(x, hp) for x in (q, k, v, o, do.astype(q.dtype))), lse, kv_start, kv_end,
        causal=causal, scale=scale, interpret=interpret,
    )  # fmt: skip
    # integer bounds have no cotangent
    return dq[..., :h], dk[..., :h], dv[..., :h], None, None


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
