"""Backend `interpret` of attention_pool against the reference: outputs and dq, dk, dv under jit + grad.

Metric: max-abs error / max(max-abs reference, 1) (conftest.rel_err). Outputs start as NaN.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples
from kernel_cases import PADDINGS, bounds, needs_interpreter, rel_err

import kernels
from kernels.tolerances import tolerance


def _run(backend, q, k, v, start, end, w):
    def loss(q, k, v):
        o = kernels.attention_pool(q, k, v, kv_start=start, kv_end=end, backend=backend)
        return jnp.sum(o.astype(jnp.float32) * w), o

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    return out, grads


def _inputs(seed, b, s, n, h, padding, dtype):
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.standard_normal((b, n, h)), dtype)
    k = jnp.asarray(rng.standard_normal((b, s, n, h)), dtype)
    v = jnp.asarray(rng.standard_normal((b, s, n, h)), dtype)
    start, end = bounds(rng, b, s, padding)
    w = jnp.asarray(rng.standard_normal((b, n, h)), jnp.float32)
    return q, k, v, jnp.asarray(start), jnp.asarray(end), w


def _compare(args, fwd_tol, grad_tol, backend="interpret"):
    out, grads = _run(backend, *args)
    with jax.default_matmul_precision("highest"):  # an exact oracle (a GPU's default is TF32)
        want_out, want_grads = _run("reference", *args)
    for got in (out, *grads):
        assert not np.isnan(np.asarray(got, np.float32)).any()
    assert rel_err(out, want_out) <= fwd_tol
    for name, got, want in zip(("dq", "dk", "dv"), grads, want_grads, strict=True):
        assert rel_err(got, want) <= grad_tol, name


@settings(max_examples=examples(12))
@given(
    b=st.integers(1, 4),
    s=st.sampled_from((1, 7, 16, 50, 200)),
    n=st.sampled_from((1, 2)),
    h=st.sampled_from((16, 32, 50, 64)),
    padding=st.sampled_from(PADDINGS),
    seed=st.integers(0, 2**16),
)
@pytest.mark.slow  # the Hypothesis sweep; bf16 and padded-row cases stay in the fast tier
def test_pool_interpret_matches_reference_fp32(b, s, n, h, padding, seed):
    needs_interpreter()
    _compare(_inputs(seed, b, s, n, h, padding, jnp.float32), *tolerance(jnp.float32))


@pytest.mark.parametrize(("s", "h"), [(50, 50), (200, 64)])
def test_pool_interpret_matches_reference_bf16(s, h):
    needs_interpreter()
    _compare(_inputs(3, 3, s, 2, h, "empty_row", jnp.bfloat16), *tolerance(jnp.bfloat16))


def test_pool_fully_padded_row_is_zero():
    needs_interpreter()
    q, k, v, start, end, w = _inputs(4, 2, 16, 1, 16, "empty_row", jnp.float32)
    out, grads = _run("interpret", q, k, v, start, end, w)
    assert np.all(np.asarray(out)[0] == 0.0)
    for g in grads:
        assert np.all(np.asarray(g)[0] == 0.0)


def test_pool_under_vmap():
    needs_interpreter()
    q, k, v, start, end, _ = _inputs(5, 2, 7, 1, 16, "left", jnp.float32)
    qs = jnp.stack([q, -q])

    def f(backend):
        one = lambda q: kernels.attention_pool(q, k, v, kv_start=start, kv_end=end, backend=backend)  # noqa: E731
        return jax.jit(jax.vmap(one))(qs)

    assert rel_err(f("interpret"), f("reference")) <= 1e-5


def _gpu_ready() -> bool:
    return jax.default_backend() == "gpu" and importlib.util.find_spec("jax_triton") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="backend 'triton' needs a GPU and jax-triton: pip install -e '.[gpu]'")
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("h", [50, 64, 128])
def test_pool_triton_gpu(dtype, h):
    _compare(_inputs(0, 256, 200, 2, h, "empty_row", dtype), *tolerance(dtype), backend="triton")
