"""The pure-JAX reference against a naive per-row, per-query numpy loop, including padded and empty rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kernel_cases import PADDINGS, bounds, rel_err

import kernels


def naive_attention(q, k, v, start, end, causal, scale):
    b, t, n, h = q.shape
    out = np.zeros((b, t, n, h), np.float64)
    for bi in range(b):
        for ni in range(n):
            for i in range(t):
                keys = [j for j in range(start[bi], end[bi]) if not causal or j <= i]
                if not keys:
                    continue  # no visible key: zeros
                s = np.array([q[bi, i, ni] @ k[bi, j, ni] for j in keys], np.float64) * scale
                p = np.exp(s - s.max())
                p /= p.sum()
                out[bi, i, ni] = sum(pj * v[bi, j, ni] for pj, j in zip(p, keys, strict=True))
    return out


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_naive_loop(rng, padding, causal):
    b, t, n, h = 3, 9, 2, 5
    q, k, v = (rng.standard_normal((b, t, n, h)).astype(np.float32) for _ in range(3))
    start, end = bounds(rng, b, t, padding)
    got = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=causal, backend="reference")
    want = naive_attention(q, k, v, start, end, causal, 1 / np.sqrt(h))
    assert rel_err(got, want) <= 1e-5


def test_reference_target_attention_t_ne_s(rng):
    b, t, s, n, h = 2, 3, 11, 1, 8
    q = rng.standard_normal((b, t, n, h)).astype(np.float32)
    k, v = (rng.standard_normal((b, s, n, h)).astype(np.float32) for _ in range(2))
    start, end = np.array([2, 0], np.int32), np.array([11, 4], np.int32)
    got = kernels.attention(q, k, v, kv_start=start, kv_end=end, backend="reference")
    assert rel_err(got, naive_attention(q, k, v, start, end, False, 1 / np.sqrt(h))) <= 1e-5


def test_reference_pool_matches_naive_loop(rng):
    b, s, n, h = 4, 10, 2, 6
    q = rng.standard_normal((b, n, h)).astype(np.float32)
    k, v = (rng.standard_normal((b, s, n, h)).astype(np.float32) for _ in range(2))
    start, end = bounds(rng, b, s, "empty_row")
    got = kernels.attention_pool(q, k, v, kv_start=start, kv_end=end, backend="reference")
    want = naive_attention(q[:, None], k, v, start, end, False, 1 / np.sqrt(h))[:, 0]
    assert rel_err(got, want) <= 1e-5


def test_reference_fully_padded_rows_zero_output_and_grads(rng):
    b, t, n, h = 2, 6, 1, 4
    q, k, v = (jnp.asarray(rng.standard_normal((b, t, n, h)), jnp.float32) for _ in range(3))
    start, end = jnp.array([3, 0]), jnp.array([3, 6])  # row 0 sees nothing

    def loss(q, k, v):
        return jnp.sum(kernels.attention(q, k, v, kv_start=start, kv_end=end, backend="reference") ** 2)

    out = kernels.attention(q, k, v, kv_start=start, kv_end=end, backend="reference")
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    assert np.all(np.asarray(out[0]) == 0.0)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
        assert np.all(np.asarray(g[0]) == 0.0)
