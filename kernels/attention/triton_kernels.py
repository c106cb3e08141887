"""Flash-style Triton kernels for multi-head attention with per-row key bounds (forward + backward).

Axis legend: B batch, T query length, S key length, N heads, H head dim (HEAD = H rounded up to a
power of 2 >= 16, the tile width: columns H..HEAD-1 are masked, load 0 and are never stored).
Layouts (all contiguous): q/o/dq [B,T,N,H], k/v/dk/dv [B,S,N,H], lse/delta [B,N,T] fp32.
Grid: axis 0 = B*N (CUDA caps axes 1 and 2 at 65,535), axis 1 = query or key blocks.
Key j of row b is visible to query i iff lo <= j < hi with lo = clip(kv_start[b], 0, S),
hi = clip(kv_end[b], lo, S), and, when CAUSAL, j <= i. Rows with no visible key get o = 0, lse = -inf.

Argument order is (inputs, runtime scalars, outputs, constexprs) because jax_triton appends the
output pointers after the positional arguments. T, S, N and the bounds are runtime values, so a new
kv length never recompiles a kernel; only the block sizes, H, CAUSAL and the dtype do. `scale` arrives
as fp32 from the bindings, and each kernel casts it to fp32 again: jax-triton types a Python float as
fp64, which would silently turn the softmax math into fp64 (or fail to compile a loop).
"""

from __future__ import annotations

import triton
import triton.language as tl

from kernels.triton_matmul import mm


@triton.jit
def attention_fwd_kernel(
    Q, K, V, KV_START, KV_END,
    T, S, N, scale,
    OUT, LSE,
    CAUSAL: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    pid_bn = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = pid_bn // N
    n = pid_bn % N
    lo = tl.minimum(tl.maximum(tl.load(KV_START + b), 0), S)
    hi = tl.maximum(tl.minimum(tl.load(KV_END + b), S), lo)
    if CAUSAL:
        # keys above the last query of this block are never visible: stop the loop there
        hi = tl.maximum(tl.minimum(hi, (pid_m + 1) * BLOCK_M), lo)
    scale = tl.cast(scale, tl.float32)  # an fp64 scale would make the whole softmax fp64
    qk_scale = scale * 1.4426950408889634  # exp2 domain: exp(x) = exp2(x * log2(e))

    row = N * H  # stride between consecutive positions of one head
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # the tile is HEAD wide; masked columns add 0 to every dot product
    q_base = Q + b.to(tl.int64) * T * row + n * H
    k_base = K + b.to(tl.int64) * S * row + n * H
    v_base = V + b.to(tl.int64) * S * row + n * H
    q_ok = offs_m < T
    q_mask = q_ok[:, None] & h_ok[None, :]
    q = tl.load(q_base + offs_m[:, None] * row + offs_h[None, :], mask=q_mask, other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD], tl.float32)
    # key blocks wholly outside [lo, hi) are skipped by the loop bounds
    for start_n in range(lo // BLOCK_N * BLOCK_N, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ok = (offs_n >= lo) & (offs_n < hi)
        kv_mask = k_ok[:, None] & h_ok[None, :]
        k = tl.load(k_base + offs_n[:, None] * row + offs_h[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * row + offs_h[None, :], mask=kv_mask, other=0.0)
        qk = mm(q, tl.trans(k), IEEE, UPCAST)
        visible = k_ok[None, :]
        if CAUSAL:
            visible = visible & (offs_n[None, :] <= offs_m[:, None])
        qk = tl.where(visible, qk * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        # a row with nothing visible yet keeps m = -inf; shift it by 0 so exp2 never sees -inf - -inf
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(qk - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        pv = mm(p.to(v.dtype), v, IEEE, UPCAST)
        acc = acc * alpha[:, None] + pv
        m_i = m_new

    has_key = l_i > 0.0
    l_safe = tl.where(has_key, l_i, 1.0)
    out = acc / l_safe[:, None]
    lse = tl.where(has_key, (m_i + tl.log2(l_safe)) * 0.6931471805599453, float("-inf"))
    o_base = OUT + b.to(tl.int64) * T * row + n * H
    o_ptrs = o_base + offs_m[:, None] * row + offs_h[None, :]
    tl.store(o_ptrs, out.to(OUT.dtype.element_ty), mask=q_mask)
    tl.store(LSE + pid_bn.to(tl.int64) * T + offs_m, lse, mask=q_ok)


@triton.jit
def attention_bwd_preprocess_kernel(
    OUT, DO,
    T, N,
    DELTA,
    BLOCK_M: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    # delta_i = rowsum(o_i * do_i): the softmax-Jacobian term shared by the dK/dV and dQ kernels
    pid_bn = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = pid_bn // N
    n = pid_bn % N
    row = N * H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # the tile is HEAD wide; masked columns add 0 to every dot product
    q_ok = offs_m < T
    base = b.to(tl.int64) * T * row + n * H + offs_m[:, None] * row + offs_h[None, :]
    q_mask = q_ok[:, None] & h_ok[None, :]
    o = tl.load(OUT + base, mask=q_mask, other=0.0).to(tl.float32)
    do = tl.load(DO + base, mask=q_mask, other=0.0).to(tl.float32)
    tl.store(DELTA + pid_bn.to(tl.int64) * T + offs_m, tl.sum(o * do, 1), mask=q_ok)


@triton.jit
def attention_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, KV_START, KV_END,
    T, S, N, scale,
    DK, DV,
    CAUSAL: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    # one program owns one key block and loops over query blocks: each dK/dV element has one writer
    pid_bn = tl.program_id(0)
    pid_n = tl.program_id(1)
    b = pid_bn // N
    n = pid_bn % N
    lo = tl.minimum(tl.maximum(tl.load(KV_START + b), 0), S)
    hi = tl.maximum(tl.minimum(tl.load(KV_END + b), S), lo)
    scale = tl.cast(scale, tl.float32)  # an fp64 scale would make the whole softmax fp64
    qk_scale = scale * 1.4426950408889634

    row = N * H
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # the tile is HEAD wide; masked columns add 0 to every dot product
    q_base = Q + b.to(tl.int64) * T * row + n * H
    do_base = DO + b.to(tl.int64) * T * row + n * H
    kv_off = b.to(tl.int64) * S * row + n * H + offs_n[:, None] * row + offs_h[None, :]
    k_ok = (offs_n >= lo) & (offs_n < hi)
    kv_mask = k_ok[:, None] & h_ok[None, :]
    k = tl.load(K + kv_off, mask=kv_mask, other=0.0)
    v = tl.load(V + kv_off, mask=kv_mask, other=0.0)

    dk = tl.zeros([BLOCK_N, HEAD], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD], tl.float32)
    m_lo = 0
    if CAUSAL:
        # queries before this key block never see it
        m_lo = start_n // BLOCK_M * BLOCK_M
    # no valid key in this block: an empty loop, and the zeros below are stored
    m_hi = tl.where((start_n >= hi) | (start_n + BLOCK_N <= lo), 0, T)
    for start_m in range(m_lo, m_hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q_ok = offs_m < T
        q_mask = q_ok[:, None] & h_ok[None, :]
        q = tl.load(q_base + offs_m[:, None] * row + offs_h[None, :], mask=q_mask, other=0.0)
        do = tl.load(do_base + offs_m[:, None] * row + offs_h[None, :], mask=q_mask, other=0.0)
        lse = tl.load(LSE + pid_bn.to(tl.int64) * T + offs_m, mask=q_ok, other=0.0)
        delta = tl.load(DELTA + pid_bn.to(tl.int64) * T + offs_m, mask=q_ok, other=0.0)
        # empty rows (lse = -inf) get exp2(x - inf) = 0 instead of an overflow
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
        qk_t = mm(k, tl.trans(q), IEEE, UPCAST)
        visible = k_ok[:, None] & q_ok[None, :]
        if CAUSAL:
            visible = visible & (offs_n[:, None] <= offs_m[None, :])
        p_t = tl.exp2(tl.where(visible, qk_t * qk_scale - lse2[None, :], float("-inf")))
        dv += mm(p_t.to(do.dtype), do, IEEE, UPCAST)
        dp_t = mm(v, tl.trans(do), IEEE, UPCAST)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += mm(ds_t.to(q.dtype), q, IEEE, UPCAST)

    s_mask = (offs_n < S)[:, None] & h_ok[None, :]
    tl.store(DK + kv_off, (dk * scale).to(DK.dtype.element_ty), mask=s_mask)
    tl.store(DV + kv_off, dv.to(DV.dtype.element_ty), mask=s_mask)


@triton.jit
def attention_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, KV_START, KV_END,
    T, S, N, scale,
    DQ,
    CAUSAL: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, H: tl.constexpr, HEAD: tl.constexpr,
):  # fmt: skip
    # one program owns one query block and loops over key blocks: dQ needs no atomics
    pid_bn = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = pid_bn // N
    n = pid_bn % N
    lo = tl.minimum(tl.maximum(tl.load(KV_START + b), 0), S)
    hi = tl.maximum(tl.minimum(tl.load(KV_END + b), S), lo)
    if CAUSAL:
        hi = tl.maximum(tl.minimum(hi, (pid_m + 1) * BLOCK_M), lo)
    scale = tl.cast(scale, tl.float32)  # an fp64 scale would make the whole softmax fp64
    qk_scale = scale * 1.4426950408889634

    row = N * H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_h = tl.arange(0, HEAD)
    h_ok = offs_h < H  # the tile is HEAD wide; masked columns add 0 to every dot product
    q_ok = offs_m < T
    q_off = b.to(tl.int64) * T * row + n * H + offs_m[:, None] * row + offs_h[None, :]
    k_base = K + b.to(tl.int64) * S * row + n * H
    v_base = V + b.to(tl.int64) * S * row + n * H
    q_mask = q_ok[:, None] & h_ok[None, :]
    q = tl.load(Q + q_off, mask=q_mask, other=0.0)
    do = tl.load(DO + q_off, mask=q_mask, other=0.0)
    lse = tl.load(LSE + pid_bn.to(tl.int64) * T + offs_m, mask=q_ok, other=0.0)
    delta = tl.load(DELTA + pid_bn.to(tl.int64) * T + offs_m, mask=q_ok, other=0.0)
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)

    dq = tl.zeros([BLOCK_M, HEAD], tl.float32)
    for start_n in range(lo // BLOCK_N * BLOCK_N, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ok = (offs_n >= lo) & (offs_n < hi)
        kv_mask = k_ok[:, None] & h_ok[None, :]
        k = tl.load(k_base + offs_n[:, None] * row + offs_h[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * row + offs_h[None, :], mask=kv_mask, other=0.0)
        qk = mm(q, tl.trans(k), IEEE, UPCAST)
        dp = mm(do, tl.trans(v), IEEE, UPCAST)
        visible = k_ok[None, :] & q_ok[:, None]
        if CAUSAL:
            visible = visible & (offs_n[None, :] <= offs_m[:, None])
        p = tl.exp2(tl.where(visible, qk * qk_scale - lse2[:, None], float("-inf")))
        ds = p * (dp - delta[:, None])
        dq += mm(ds.to(k.dtype), k, IEEE, UPCAST)

    tl.store(DQ + q_off, (dq * scale).to(DQ.dtype.element_ty), mask=q_mask)
