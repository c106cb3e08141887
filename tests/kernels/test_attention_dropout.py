"""Attention dropout (`kernels.attention(dropout_rate=, dropout_key=)`): the weights, not the output, are dropped.

The reference applies the keep multipliers to the softmax weights; the xla backend's hand-written backward must
give the reference's autodiff gradients under the same mask; dispatch draws one mask per key for every backend
and refuses the Triton kernels, which have no dropout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kernel_cases import PADDINGS, bounds, needs_interpreter, rel_err

import kernels
from kernels.attention.reference import attention_reference, dropout_keep, visible_keys
from kernels.attention.xla import attention_xla


def _inputs(rng, b, t, s, n, h, padding):
    q = rng.standard_normal((b, t, n, h)).astype(np.float32)
    k, v = (rng.standard_normal((b, s, n, h)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((b, t, n, h)).astype(np.float32)
    start, end = bounds(rng, b, s, padding)
    return q, k, v, w, jnp.asarray(start), jnp.asarray(end)


def test_keep_multipliers_drop_at_the_rate_and_keep_the_mean():
    keep = np.asarray(dropout_keep(jax.random.key(0), (64, 2, 50, 50), 0.3))
    kept = keep[keep > 0]
    np.testing.assert_allclose(kept, 1 / (1 - round(0.3 * 65536) / 65536))
    assert abs((keep == 0).mean() - 0.3) < 0.005
    assert abs(keep.mean() - 1.0) < 0.01
    assert np.all(np.asarray(dropout_keep(jax.random.key(0), (4, 4), 0.0)) == 1.0)
    with pytest.raises(ValueError, match="not in"):
        dropout_keep(jax.random.key(0), (4, 4), 1.0)


@pytest.mark.parametrize("causal", [False, True])
def test_reference_drops_the_softmax_weights(rng, causal):
    q, k, v, _, start, end = _inputs(rng, 3, 9, 9, 2, 5, "left")
    keep = dropout_keep(jax.random.key(1), (3, 2, 9, 9), 0.4)
    scores = jnp.einsum("btnh,bsnh->bnts", q, k) * 0.5
    visible = visible_keys(start, end, 9, 9, causal)
    weights = jax.nn.softmax(jnp.where(visible, scores, -1e30), axis=-1)
    weights = jnp.where(visible.any(-1, keepdims=True), weights, 0.0)  # a query with no visible key: zeros
    want = jnp.einsum("bnts,bsnh->btnh", weights * keep, v)
    got = attention_reference(q, k, v, start, end, causal, 0.5, keep)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, attention_reference(q, k, v, start, end, causal, 0.5), atol=1e-3)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("causal", [False, True])
def test_xla_backward_with_dropout_matches_reference_autodiff(rng, padding, causal):
    b, t, n, h = 3, 11, 2, 6
    s = t if causal else t + 4
    q, k, v, w, start, end = _inputs(rng, b, t, s, n, h, padding)
    keep = dropout_keep(jax.random.key(2), (b, n, t, s), 0.3)

    def loss(fn):
        return jax.jit(jax.value_and_grad(lambda q, k, v: jnp.sum(fn(q, k, v) * w), argnums=(0, 1, 2)))(q, k, v)

    got_value, got_grads = loss(lambda q, k, v: attention_xla(q, k, v, start, end, keep, causal, 0.4))
    want_value, want_grads = loss(lambda q, k, v: attention_reference(q, k, v, start, end, causal, 0.4, keep))
    assert rel_err(got_value, want_value) <= 1e-5
    for got, want in zip(got_grads, want_grads, strict=True):
        assert np.all(np.isfinite(got))
        assert rel_err(got, want) <= 1e-5


def _dispatch(q, k, v, start, end, backend, key, rate=0.25):
    return kernels.attention(
        q, k, v, kv_start=start, kv_end=end, causal=True, backend=backend, dropout_rate=rate, dropout_key=key
    )


def test_dispatch_one_mask_per_key_on_every_backend(rng):
    q, k, v, _, start, end = _inputs(rng, 2, 8, 8, 1, 4, "left")
    key = jax.random.key(3)
    with_key = _dispatch(q, k, v, start, end, "reference", key)
    np.testing.assert_allclose(_dispatch(q, k, v, start, end, "xla", key), with_key, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_dispatch(q, k, v, start, end, "auto", key), with_key, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_dispatch(q, k, v, start, end, "xla", jax.random.key(4)), with_key, atol=1e-3)
    plain = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=True, backend="xla")
    # no key (evaluation) or rate 0: no dropout
    np.testing.assert_array_equal(_dispatch(q, k, v, start, end, "xla", None), plain)
    np.testing.assert_array_equal(_dispatch(q, k, v, start, end, "xla", key, rate=0.0), plain)


def test_dropout_is_unbiased_over_keys(rng):
    """The weights' multipliers have mean 1, so the output averaged over many masks is the undropped output."""
    q, k, v, _, start, end = _inputs(rng, 2, 6, 6, 1, 4, "none")
    keys = jax.random.split(jax.random.key(5), 2000)
    outs = jax.vmap(lambda key: _dispatch(q, k, v, start, end, "xla", key, rate=0.5))(keys)
    plain = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=True, backend="xla")
    assert np.abs(np.asarray(outs.mean(0)) - np.asarray(plain)).max() < 0.1
    assert np.asarray(outs.std(0)).max() > 0.1  # the masks do vary


def test_triton_kernels_refuse_dropout(rng):
    needs_interpreter()
    q, k, v, _, start, end = _inputs(rng, 1, 4, 4, 1, 4, "none")
    with pytest.raises(ValueError, match="attention dropout"):
        _dispatch(q, k, v, start, end, "interpret", jax.random.key(0))
