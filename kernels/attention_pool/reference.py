"""Pure-JAX attention pooling: one query per row and head, out = sum_j softmax_j(scale * q . k_j) v_j.

This is the source article's weighting/summation a_j = softmax(w . x_j + b), out = sum_j a_j x_j with
q = w and k = v = x (a scalar b cancels in the softmax). Same masking rules as `attention`.
"""

from __future__ import annotations

from jaxtyping import Array, Float, Int

from kernels.attention.reference import attention_reference


def attention_pool_reference(
    q: Float[Array, "B N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    kv_start: Int[Array, " B"],
    kv_end: Int[Array, " B"],
    scale: float,
) -> Float[Array, "B N H"]:
    # one query per row: T = 1
    return attention_reference(q[:, None], k, v, kv_start, kv_end, False, scale)[:, 0]
