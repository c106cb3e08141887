"""Triton kernels for the linear cross-entropy: forward and backward that never write [P, I] logits.

Axis legend: P positions, D model dim (BLOCK_D = D padded to a power of 2, masked in the loads),
I items (argument N_ITEMS: ruff rejects a variable named I). Candidates are rows BOUNDS[0] <= i < BOUNDS[1]
(the full CE: [1, I), row 0 = padding); a target of -1 = no target logit for that position.
Layouts (contiguous): hidden [P, D], table [I, D], targets/lse/g_lse/g_target [P];
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

from kernels.triton_matmul import mm

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)  # a global in @triton.jit code must be a constexpr
LN2: tl.constexpr = tl.constexpr(0.6931471805599453)


@triton.jit
def linear_ce_fwd_kernel(
    HIDDEN, TABLE, TARGETS, BOUNDS,
    P, N_ITEMS, D, I_PER_SPLIT,
    LSE_PART, TARGET_PART,
    BLOCK_P: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Per item range `split`: the log-sum-exp over its candidates and the target's logit if it holds it."""
    lo = tl.load(BOUNDS)
    hi = tl.load(BOUNDS + 1)
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
    target = tl.load(TARGETS + offs_p, mask=p_ok, other=-1)

    m_i = tl.full([BLOCK_P], float("-inf"), tl.float32)  # running max, log2 units
    l_i = tl.zeros([BLOCK_P], tl.float32)
    target_logit = tl.zeros([BLOCK_P], tl.float32)
    for start in range(i_lo, i_hi, BLOCK_I):
        offs_i = start + tl.arange(0, BLOCK_I)
        i_ok = offs_i < i_hi
        tile = tl.load(
            TABLE + offs_i.to(tl.int64)[:, None] * D + offs_d[None, :], mask=i_ok[:, None] & d_ok[None, :], other=0.0
        )
        logits = mm(h, tl.trans(tile), IEEE, UPCAST)  # [BLOCK_P, BLOCK_I] fp32, only ever in registers
        is_target = offs_i[None, :] == target[:, None]
        target_logit += tl.sum(tl.where(is_target, logits, 0.0), 1)
        s = tl.where((i_ok & (offs_i >= lo) & (offs_i < hi))[None, :], logits * LOG2E, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a tile without candidates keeps the max at -inf
        l_i = l_i * tl.exp2(m_i - m_safe) + tl.sum(tl.exp2(s - m_safe[:, None]), 1)
        m_i = m_new

    # a range without candidates has l_i = 0: its partial log-sum-exp is -inf (no log2(0) evaluated)
    out = split.to(tl.int64) * P + offs_p
    lse_part = tl.where(l_i > 0.0, (m_i + tl.log2(tl.maximum(l_i, 1e-30))) * LN2, float("-inf"))
    tl.store(LSE_PART + out, lse_part, mask=p_ok)
    tl.store(TARGET_PART + out, target_logit, mask=p_ok)


@triton.jit
def linear_ce_bwd_dhidden_kernel(
    HIDDEN, TABLE, TARGETS, BOUNDS, LSE, G_LSE, G_TARGET,
    P, N_ITEMS, D, I_PER_SPLIT,
    DHIDDEN_PART,
    BLOCK_P: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    lo = tl.load(BOUNDS)
    hi = tl.load(BOUNDS + 1)
    split = tl.program_id(1)
    i_lo = split * I_PER_SPLIT
    i_hi = tl.minimum(i_lo + I_PER_SPLIT, N_ITEMS)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = offs_p < P
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    h_ptrs = offs_p.to(tl.int64)[:, None] * D + offs_d[None, :]
    h = tl.load(HIDDEN + h_ptrs, mask=p_ok[:, None] & d_ok[None, :], other=0.0)
    target = tl.load(TARGETS + offs_p, mask=p_ok, other=-1)
    lse = tl.load(LSE + offs_p, mask=p_ok, other=0.0)
    # no candidate at all (lse = -inf): softmax is empty, exp2(s - inf) = 0 instead of exp2(-inf + inf) = NaN
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * LOG2E)
    g_lse = tl.load(G_LSE + offs_p, mask=p_ok, other=0.0)
    g_target = tl.where(target >= 0, tl.load(G_TARGET + offs_p, mask=p_ok, other=0.0), 0.0)

    acc = tl.zeros([BLOCK_P, BLOCK_D], tl.float32)
    for start in range(i_lo, i_hi, BLOCK_I):
        offs_i = start + tl.arange(0, BLOCK_I)
        i_ok = offs_i < i_hi
        tile = tl.load(
            TABLE + offs_i.to(tl.int64)[:, None] * D + offs_d[None, :], mask=i_ok[:, None] & d_ok[None, :], other=0.0
        )
        s = mm(h, tl.trans(tile), IEEE, UPCAST) * LOG2E
        s = tl.where((i_ok & (offs_i >= lo) & (offs_i < hi))[None, :], s, float("-inf"))
        onehot = tl.where(offs_i[None, :] == target[:, None], g_target[:, None], 0.0)
        ds = g_lse[:, None] * tl.exp2(s - lse2[:, None]) + onehot  # d lse = softmax, d target logit = onehot
        acc += mm(ds.to(tile.dtype), tile, IEEE, UPCAST)
    tl.store(DHIDDEN_PART + split.to(tl.int64) * P * D + h_ptrs, acc, mask=p_ok[:, None] & d_ok[None, :])


@triton.jit
def linear_ce_bwd_dtable_kernel(
    HIDDEN, TABLE, TARGETS, BOUNDS, LSE, G_LSE, G_TARGET,
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
    is_candidate = i_ok & (offs_i >= tl.load(BOUNDS)) & (offs_i < tl.load(BOUNDS + 1))

    acc = tl.zeros([BLOCK_I, BLOCK_D], tl.float32)
    p_lo = split * P_PER_SPLIT  # P_PER_SPLIT is a multiple of BLOCK_P
    p_hi = tl.minimum(p_lo + P_PER_SPLIT, P)
    for start in range(p_lo, p_hi, BLOCK_P):
        offs_p = start + tl.arange(0, BLOCK_P)
        p_ok = offs_p < p_hi
        h = tl.load(
            HIDDEN + offs_p.to(tl.int64)[:, None] * D + offs_d[None, :], mask=p_ok[:, None] & d_ok[None, :], other=0.0
        )
        target = tl.load(TARGETS + offs_p, mask=p_ok, other=-1)
        lse = tl.load(LSE + offs_p, mask=p_ok, other=0.0)
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * LOG2E)
        g_lse = tl.load(G_LSE + offs_p, mask=p_ok, other=0.0)
        g_target = tl.where(target >= 0, tl.load(G_TARGET + offs_p, mask=p_ok, other=0.0), 0.0)
        s_t = mm(tile, tl.trans(h), IEEE, UPCAST) * LOG2E  # [BLOCK_I, BLOCK_P]: logits transposed
        s_t = tl.where(is_candidate[:, None], s_t, float("-inf"))
        onehot = tl.where(offs_i[:, None] == target[None, :], g_target[None, :], 0.0)
        ds_t = g_lse[None, :] * tl.exp2(s_t - lse2[None, :]) + onehot
        acc += mm(ds_t.to(h.dtype), h, IEEE, UPCAST)
    out = DTABLE + split.to(tl.int64) * N_ITEMS * D + t_ptrs
    tl.store(out, acc, mask=i_ok[:, None] & d_ok[None, :])
