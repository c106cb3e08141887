"""Triton kernels for attention pooling: one query per (row, head), forward + backward.

Axis legend: B batch, S key length, N heads, H head dim (HEAD = H rounded up to a power of 2, the
tile width: columns H..HEAD-1 are masked, load 0 and are never stored).
Layouts (contiguous): q/o/dq [B,N,H], k/v/dk/dv [B,S,N,H], lse [B,N] fp32. Grid: (B*N,) on axis 0.
With a single query the op is memory-bound, so there is no tl.dot (M would be 1): scores are a
multiply-and-reduce over HEAD, and each program streams its row's keys once with an online softmax.
One program owns one (row, head) and therefore every dK/dV element of it: no atomics.
`scale` is cast to fp32 in each kernel: jax-triton types a Python float as fp64.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def attention_pool_fwd_kernel(
    Q, K, V, KV_START, KV_END,
    S, N, scale,
    OUT, LSE,
    BLOCK_N: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)  # = b * N + n
    b = pid // N
    n = pid % N
    lo = tl.minimum(tl.maximum(tl.load(KV_START + b), 0), S)
    hi = tl.maximum(tl.minimum(tl.load(KV_END + b), S), lo)
    scale = tl.cast(scale, tl.float32)  # an fp64 scale would make the whole softmax fp64
    qk_scale = scale * 1.4426950408889634  # exp2 domain

    row = N * H
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # masked columns load 0: they add 0 to every score
    q = tl.load(Q + pid.to(tl.int64) * H + offs_h, mask=h_ok, other=0.0).to(tl.float32)
    kv_base = b.to(tl.int64) * S * row + n * H

    m_i = tl.max(tl.full([BLOCK_N], float("-inf"), tl.float32), 0)  # a 0-d fp32 running max
    l_i = tl.sum(tl.zeros([BLOCK_N], tl.float32), 0)
    acc = tl.zeros([HEAD], tl.float32)
    for start_n in range(lo // BLOCK_N * BLOCK_N, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ok = (offs_n >= lo) & (offs_n < hi)
        ptrs = kv_base + offs_n[:, None] * row + offs_h[None, :]
        kv_mask = k_ok[:, None] & h_ok[None, :]
        k = tl.load(K + ptrs, mask=kv_mask, other=0.0).to(tl.float32)
        v = tl.load(V + ptrs, mask=kv_mask, other=0.0).to(tl.float32)
        s = tl.where(k_ok, tl.sum(k * q[None, :], 1) * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe)
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 0)
        acc = acc * alpha + tl.sum(p[:, None] * v, 0)
        m_i = m_new

    has_key = l_i > 0.0
    l_safe = tl.where(has_key, l_i, 1.0)
    tl.store(OUT + pid.to(tl.int64) * H + offs_h, (acc / l_safe).to(OUT.dtype.element_ty), mask=h_ok)
    tl.store(LSE + pid, tl.where(has_key, (m_i + tl.log2(l_safe)) * 0.6931471805599453, float("-inf")))


@triton.jit
def attention_pool_bwd_kernel(
    Q, K, V, OUT, DO, LSE, KV_START, KV_END,
    S, N, scale,
    DQ, DK, DV,
    BLOCK_N: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = pid // N
    n = pid % N
    lo = tl.minimum(tl.maximum(tl.load(KV_START + b), 0), S)
    hi = tl.maximum(tl.minimum(tl.load(KV_END + b), S), lo)
    scale = tl.cast(scale, tl.float32)  # an fp64 scale would make the whole softmax fp64
    qk_scale = scale * 1.4426950408889634

    row = N * H
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # masked columns load 0: they add 0 to every score
    q = tl.load(Q + pid.to(tl.int64) * H + offs_h, mask=h_ok, other=0.0).to(tl.float32)
    do = tl.load(DO + pid.to(tl.int64) * H + offs_h, mask=h_ok, other=0.0).to(tl.float32)
    o = tl.load(OUT + pid.to(tl.int64) * H + offs_h, mask=h_ok, other=0.0).to(tl.float32)
    delta = tl.sum(o * do, 0)  # rowsum(o * do): one value per program, so no preprocessing kernel
    lse = tl.load(LSE + pid)
    # an empty row (lse = -inf) gets p = exp2(x - inf) = 0 everywhere
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    kv_base = b.to(tl.int64) * S * row + n * H

    dq = tl.zeros([HEAD], tl.float32)
    first = lo // BLOCK_N * BLOCK_N
    last = tl.maximum((hi + BLOCK_N - 1) // BLOCK_N * BLOCK_N, first)
    for start_n in range(first, last, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ok = (offs_n >= lo) & (offs_n < hi)
        ptrs = kv_base + offs_n[:, None] * row + offs_h[None, :]
        kv_mask = k_ok[:, None] & h_ok[None, :]
        k = tl.load(K + ptrs, mask=kv_mask, other=0.0).to(tl.float32)
        v = tl.load(V + ptrs, mask=kv_mask, other=0.0).to(tl.float32)
        p = tl.exp2(tl.where(k_ok, tl.sum(k * q[None, :], 1) * qk_scale - lse2, float("-inf")))
        dp = tl.sum(v * do[None, :], 1)
        ds = p * (dp - delta)
        dq += tl.sum(ds[:, None] * k, 0)
        s_mask = (offs_n < S)[:, None] & h_ok[None, :]
        tl.store(DK + ptrs, (ds[:, None] * q[None, :] * scale).to(DK.dtype.element_ty), mask=s_mask)
        tl.store(DV + ptrs, (p[:, None] * do[None, :]).to(DV.dtype.element_ty), mask=s_mask)
    tl.store(DQ + pid.to(tl.int64) * H + offs_h, (dq * scale).to(DQ.dtype.element_ty), mask=h_ok)

    # keys outside the bound blocks get exact zero gradients (stores only, nothing is computed)
    zeros = tl.zeros([BLOCK_N, HEAD], tl.float32).to(DK.dtype.element_ty)
    for start_n in range(0, first, BLOCK_N):
        ptrs = kv_base + (start_n + tl.arange(0, BLOCK_N))[:, None] * row + offs_h[None, :]
        tl.store(DK + ptrs, zeros, mask=h_ok[None, :])
        tl.store(DV + ptrs, zeros, mask=h_ok[None, :])
    for start_n in range(last, S, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        ptrs = kv_base + offs_n[:, None] * row + offs_h[None, :]
        s_mask = (offs_n < S)[:, None] & h_ok[None, :]
        tl.store(DK + ptrs, zeros, mask=s_mask)
        tl.store(DV + ptrs, zeros, mask=s_mask)
