"""Triton kernels for the linear cross-entropy: forward and backward that never write [P, I] logits.

Axis legend: P positions, D model dim (BLOCK_D = D padded to a power of 2, masked in the loads),
I items (argument N_ITEMS: ruff rejects a variable named I; id 0 = padding, never a candidate).
Layouts (contiguous): hidden [P, D], table [I, D], targets/lse/g [P] (target 0 = a masked position);
partial outputs in fp32: lse and target logit [SPLIT_I, P], dhidden [SPLIT_I, P, D], dtable [SPLIT_P, I, D].
The idea of Liger's fused linear CE and Apple's Cut Cross-Entropy: the forward tiles over items with an
online log-sum-exp (exp2 domain) and picks the target logit from its tile; the backward recomputes
each [BLOCK_P, BLOCK_I] tile from (hidden, table, lse) in two deterministic passes, no atomics:
one over item tiles per position block (dhidden), one over position tiles per item block (dtable).
Each pass may split its loop into ranges (SPLIT_I item ranges, SPLIT_P position ranges) run by a second
grid axis, so few positions x many items (or the reverse) still fill the GPU; the binding combines the
fp32 partials (a log-sum-exp or a sum), deterministically.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)  # a global in @triton.jit code must be a constexpr
LN2: tl.constexpr = tl.constexpr(0.6931471805599453)


@triton.jit
def _dot(a, b, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b with fp32 accumulation; IEEE keeps fp32 inputs out of TF32 to match the reference."""
    if UPCAST:
        # Triton's interpreter multiplies bf16/fp16 raw bits in tl.dot; their products are exact in fp32
        c = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    elif IEEE:
        c = tl.dot(a, b, input_precision="ieee")
    else:
        c = tl.dot(a, b)
    return c


@triton.jit
def linear_ce_fwd_kernel(
    HIDDEN, TABLE, TARGETS,
    P, N_ITEMS, D, I_PER_SPLIT,
    LSE_PART, TARGET_PART,
    BLOCK_P: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Per item range `split`: the log-sum-exp over its items and the target's logit if it holds it."""
    split = tl.program_id(1)
    i_lo = split * I_PER_SPLIT  # I_PER_SPLIT is a multiple of BLOCK_I
    i_hi = tl.minimum(i_lo + I_PER_SPLIT, N_ITEMS)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = offs_p < P
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    h = tl.load(
        HIDDEN + offs_p.to(tl.int64)[:, None] * D + offs_d[None, :], mask=p_ok[:, None] & d_ok[None, :], other=0.0
    )
    target = tl.load(TARGETS + offs_p, mask=p_ok, other=0)

    m_i = tl.full([BLOCK_P], float("-inf"), tl.float32)  # running max, log2 units
    l_i = tl.zeros([BLOCK_P], tl.float32)
    target_logit = tl.zeros([BLOCK_P], tl.float32)
    for start in range(i_lo, i_hi, BLOCK_I):
        offs_i = start + tl.arange(0, BLOCK_I)
        i_ok = offs_i < i_hi
        tile = tl.load(
            TABLE + offs_i.to(tl.int64)[:, None] * D + offs_d[None, :], mask=i_ok[:, None] & d_ok[None, :], other=0.0
        )
        logits = _dot(h, tl.trans(tile), IEEE, UPCAST)  # [BLOCK_P, BLOCK_I] fp32, only ever in registers
        is_target = offs_i[None, :] == target[:, None]
        target_logit += tl.sum(tl.where(is_target, logits, 0.0), 1)
        s = tl.where((i_ok & (offs_i != 0))[None, :], logits * LOG2E, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a tile of padding only keeps the max at -inf
        l_i = l_i * tl.exp2(m_i - m_safe) + tl.sum(tl.exp2(s - m_safe[:, None]), 1)
        m_i = m_new

    # a range of padding only has l_i = 0: its partial log-sum-exp is -inf (log2(0)), as it should be
    out = split.to(tl.int64) * P + offs_p
    tl.store(LSE_PART + out, (m_i + tl.log2(l_i)) * LN2, mask=p_ok)
    tl.store(TARGET_PART + out, target_logit, mask=p_ok)


@triton.jit
def linear_ce_bwd_dhidden_kernel(
    HIDDEN, TABLE, TARGETS, LSE, G,
    P, N_ITEMS, D, I_PER_SPLIT,
    DHIDDEN_PART,
    BLOCK_P: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    split = tl.program_id(1)
    i_lo = split * I_PER_SPLIT
    i_hi = tl.minimum(i_lo + I_PER_SPLIT, N_ITEMS)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = offs_p < P
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    h_ptrs = offs_p.to(tl.int64)[:, None] * D + offs_d[None, :]
    h = tl.load(HIDDEN + h_ptrs, mask=p_ok[:, None] & d_ok[None, :], other=0.0)
    target = tl.load(TARGETS + offs_p, mask=p_ok, other=0)
    lse2 = tl.load(LSE + offs_p, mask=p_ok, other=0.0) * LOG2E
    g = tl.where(target != 0, tl.load(G + offs_p, mask=p_ok, other=0.0), 0.0)  # masked rows: zero gradient

    acc = tl.zeros([BLOCK_P, BLOCK_D], tl.float32)
    for start in range(i_lo, i_hi, BLOCK_I):
        offs_i = start + tl.arange(0, BLOCK_I)
        i_ok = offs_i < i_hi
        tile = tl.load(
            TABLE + offs_i.to(tl.int64)[:, None] * D + offs_d[None, :], mask=i_ok[:, None] & d_ok[None, :], other=0.0
        )
        s = _dot(h, tl.trans(tile), IEEE, UPCAST) * LOG2E
        s = tl.where((i_ok & (offs_i != 0))[None, :], s, float("-inf"))
        onehot = tl.where(offs_i[None, :] == target[:, None], 1.0, 0.0)
        ds = g[:, None] * (tl.exp2(s - lse2[:, None]) - onehot)  # d nll / d logits = softmax - onehot
        acc += _dot(ds.to(tile.dtype), tile, IEEE, UPCAST)
    tl.store(DHIDDEN_PART + split.to(tl.int64) * P * D + h_ptrs, acc, mask=p_ok[:, None] & d_ok[None, :])


@triton.jit
def linear_ce_bwd_dtable_kernel(
    HIDDEN, TABLE, TARGETS, LSE, G,
    P, N_ITEMS, D, P_PER_SPLIT,
    DTABLE,
    BLOCK_P: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    offs_i = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    i_ok = offs_i < N_ITEMS
    split = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    t_ptrs = offs_i.to(tl.int64)[:, None] * D + offs_d[None, :]
    tile = tl.load(TABLE + t_ptrs, mask=i_ok[:, None] & d_ok[None, :], other=0.0)
    is_item = i_ok & (offs_i != 0)

    acc = tl.zeros([BLOCK_I, BLOCK_D], tl.float32)
    p_lo = split * P_PER_SPLIT  # P_PER_SPLIT is a multiple of BLOCK_P
    p_hi = tl.minimum(p_lo + P_PER_SPLIT, P)
    for start in range(p_lo, p_hi, BLOCK_P):
        offs_p = start + tl.arange(0, BLOCK_P)
        p_ok = offs_p < p_hi
        h = tl.load(
            HIDDEN + offs_p.to(tl.int64)[:, None] * D + offs_d[None, :], mask=p_ok[:, None] & d_ok[None, :], other=0.0
        )
        target = tl.load(TARGETS + offs_p, mask=p_ok, other=0)
        lse2 = tl.load(LSE + offs_p, mask=p_ok, other=0.0) * LOG2E
        g = tl.where(target != 0, tl.load(G + offs_p, mask=p_ok, other=0.0), 0.0)
        s_t = _dot(tile, tl.trans(h), IEEE, UPCAST) * LOG2E  # [BLOCK_I, BLOCK_P]: logits transposed
        s_t = tl.where(is_item[:, None], s_t, float("-inf"))
        onehot = tl.where(offs_i[:, None] == target[None, :], 1.0, 0.0)
        ds_t = g[None, :] * (tl.exp2(s_t - lse2[None, :]) - onehot)
        acc += _dot(ds_t.to(h.dtype), h, IEEE, UPCAST)
    out = DTABLE + split.to(tl.int64) * N_ITEMS * D + t_ptrs
    tl.store(out, acc, mask=i_ok[:, None] & d_ok[None, :])
