"""The `xla` attention backend (plain XLA, hand-written backward) against the autodiff reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kernel_cases import PADDINGS, bounds, rel_err

import kernels


def _value_and_grads(backend, q, k, v, start, end, causal, w):
    def loss(q, k, v):
        o = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=causal, backend=backend)
        return jnp.sum(o.astype(jnp.float32) * w)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(3, 9, 9, 2, 5), (2, 17, 17, 1, 50)])
def test_xla_matches_reference_outputs_and_grads(rng, padding, causal, shape):
    b, t, s, n, h = shape
    if not causal:
        s += 4  # target attention: more keys than queries
    q = rng.standard_normal((b, t, n, h)).astype(np.float32)
    k, v = (rng.standard_normal((b, s, n, h)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((b, t, n, h)).astype(np.float32)
    start, end = bounds(rng, b, s, padding)
    got_value, got_grads = _value_and_grads("xla", q, k, v, start, end, causal, w)
    want_value, want_grads = _value_and_grads("reference", q, k, v, start, end, causal, w)
    assert rel_err(got_value, want_value) <= 1e-5
    for got, want in zip(got_grads, want_grads, strict=True):
        assert np.all(np.isfinite(got))
        assert rel_err(got, want) <= 1e-5


def test_xla_empty_rows_give_zero_outputs_and_grads(rng):
    b, t, n, h = 2, 6, 1, 8
    q, k, v = (rng.standard_normal((b, t, n, h)).astype(np.float32) for _ in range(3))
    start, end = np.array([3, 0], np.int32), np.array([3, 6], np.int32)  # row 0 sees no key
    out = kernels.attention(q, k, v, kv_start=start, kv_end=end, backend="xla")
    assert np.all(np.asarray(out)[0] == 0)
    _, grads = _value_and_grads("xla", q, k, v, start, end, False, np.ones_like(q))
    for g in grads:
        assert np.all(np.asarray(g)[0] == 0)


def test_xla_bf16_close_to_fp32_reference(rng):
    b, t, n, h = 2, 33, 2, 16
    q, k, v = (rng.standard_normal((b, t, n, h)).astype(np.float32) for _ in range(3))
    start, end = bounds(rng, b, t, "left")
    to16 = lambda x: jnp.asarray(x, jnp.bfloat16)  # noqa: E731
    got = kernels.attention(to16(q), to16(k), to16(v), kv_start=start, kv_end=end, causal=True, backend="xla")
    want = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=True, backend="reference")
    assert got.dtype == jnp.bfloat16
    assert rel_err(got, want) <= 3e-2


def test_auto_picks_xla_for_attention_and_reference_for_the_pool_on_cpu():
    if jax.default_backend() == "gpu":
        pytest.skip("the CPU rule")
    assert kernels.resolve_backend("auto", "attention") is kernels.Backend.XLA
    assert kernels.resolve_backend("auto", "attention_pool") is kernels.Backend.REFERENCE
