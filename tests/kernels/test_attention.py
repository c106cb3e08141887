"""Backend `interpret` (the Triton kernels in Triton's CPU interpreter) against the reference.

Outputs and gradients dq, dk, dv under jax.jit + jax.grad, with Hypothesis over shapes, causality
and padding. Metric: max-abs error / max-abs reference (conftest.rel_err). The interpret path
allocates every kernel output filled with NaN, so an element a kernel forgets to write fails here.
"""

from __future__ import annotations

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

LENGTHS = (1, 7, 16, 50, 200)


def _inputs(seed, b, t, s, n, h, padding, dtype):
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.standard_normal((b, t, n, h)), dtype)
    k = jnp.asarray(rng.standard_normal((b, s, n, h)), dtype)
    v = jnp.asarray(rng.standard_normal((b, s, n, h)), dtype)
    start, end = bounds(rng, b, s, padding)
    w = jnp.asarray(rng.standard_normal((b, t, n, h)), jnp.float32)  # a random cotangent direction
    return q, k, v, jnp.asarray(start), jnp.asarray(end), w


def _value_and_grads(backend, q, k, v, start, end, w, causal):
    def loss(q, k, v):
        o = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=causal, backend=backend)
        return jnp.sum(o.astype(jnp.float32) * w), o

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    return out, grads


def _reference_value_and_grads(*args):
    # the oracle must be exact: JAX's default matmul precision on a GPU is TF32
    with jax.default_matmul_precision("highest"):
        return _value_and_grads("reference", *args)


def _compare(case, fwd_tol, grad_tol, backend="interpret"):
    q, k, v, start, end, w, causal = case
    out, grads = _value_and_grads(backend, q, k, v, start, end, w, causal)
    want_out, want_grads = _reference_value_and_grads(q, k, v, start, end, w, causal)
    for got in (out, *grads):
        assert not np.isnan(np.asarray(got, np.float32)).any()
    assert rel_err(out, want_out) <= fwd_tol
    for name, got, want in zip(("dq", "dk", "dv"), grads, want_grads, strict=True):
        assert rel_err(got, want) <= grad_tol, (name, q.shape, k.shape, causal, start, end)
    empty = np.asarray(start >= end)
    if empty.any():  # fully padded rows: exact zeros out and dq
        assert np.all(np.asarray(out)[empty] == 0.0)
        assert np.all(np.asarray(grads[0])[empty] == 0.0)


@st.composite
def attention_cases(draw):
    b = draw(st.integers(1, 4))
    causal = draw(st.booleans())
    t = draw(st.sampled_from(LENGTHS))
    s = t if causal else draw(st.sampled_from(LENGTHS))
    n = draw(st.sampled_from((1, 2)))
    h = draw(st.sampled_from((16, 32, 50, 64)))
    padding = draw(st.sampled_from(PADDINGS))
    seed = draw(st.integers(0, 2**16))
    q, k, v, start, end, w = _inputs(seed, b, t, s, n, h, padding, jnp.float32)
    return q, k, v, start, end, w, causal


@settings(max_examples=examples(25))
@given(attention_cases())
@pytest.mark.slow  # the Hypothesis sweep; the bf16 cases below keep the interpreter in the fast tier
def test_interpret_matches_reference_fp32(case):
    needs_interpreter()
    _compare(case, *tolerance(jnp.float32))


@pytest.mark.parametrize(
    ("b", "t", "s", "n", "h", "causal", "padding"),
    [
        (2, 50, 50, 2, 50, True, "left"),  # SASRec-like: H=50 padded to 64
        (3, 16, 200, 1, 64, False, "empty_row"),  # target attention, T != S
        (1, 7, 7, 1, 32, False, "right"),
    ],
)
def test_interpret_matches_reference_bf16(b, t, s, n, h, causal, padding):
    needs_interpreter()
    q, k, v, start, end, w = _inputs(1, b, t, s, n, h, padding, jnp.bfloat16)
    # bf16 inputs, fp32 accumulation; p and dS are rounded to bf16 before their matmuls, as on a GPU
    _compare((q, k, v, start, end, w, causal), *tolerance(jnp.bfloat16))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_interpret_matches_reference_h128(dtype):
    needs_interpreter()
    # HEAD = 128 tables use BLOCK_M != BLOCK_N in the backward (fp32 16x32, bf16 64x32)
    q, k, v, start, end, w = _inputs(4, 2, 70, 70, 1, 128, "left", dtype)
    _compare((q, k, v, start, end, w, True), *tolerance(dtype))


def test_interpret_lse_matches_reference():
    needs_interpreter()
    from kernels.attention.binding import attention_triton_with_lse
    from kernels.attention.reference import attention_reference_with_lse

    q, k, v, start, end, _ = _inputs(2, 3, 16, 16, 2, 32, "empty_row", jnp.float32)
    o, lse = attention_triton_with_lse(q, k, v, start, end, True, 0.3, interpret=True)
    want_o, want_lse = attention_reference_with_lse(q, k, v, start, end, True, 0.3)
    assert rel_err(o, want_o) <= 1e-5
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(want_lse))
    finite = np.isfinite(np.asarray(want_lse))
    np.testing.assert_allclose(np.asarray(lse)[finite], np.asarray(want_lse)[finite], rtol=1e-5, atol=1e-5)


def test_interpret_under_vmap_folds_into_batch():
    needs_interpreter()
    q, k, v, start, end, _ = _inputs(3, 2, 7, 7, 1, 16, "left", jnp.float32)
    qs = jnp.stack([q, 2 * q, -q])  # an extra leading axis V=3; k, v and the bounds are shared

    def f(backend):
        def one(q):
            return kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=True, backend=backend)

        return jax.jit(jax.vmap(one))(qs)

    assert rel_err(f("interpret"), f("reference")) <= 1e-5

    def loss(backend):
        return lambda qs: jnp.sum(jax.vmap(lambda q: kernels.attention(q, k, v, backend=backend))(qs) ** 2)

    assert rel_err(jax.jit(jax.grad(loss("interpret")))(qs), jax.grad(loss("reference"))(qs)) <= 1e-4


def test_nan_poison_catches_unwritten_outputs():
    needs_interpreter()
    from kernels.triton_launch import launch

    o = jnp.ones((1, 32, 1, 16), jnp.float32)
    # grid covers only the first 16 of 32 query rows: the rest must come back as NaN, not zeros
    (delta,) = launch(
        "kernels.attention.triton_kernels",
        "attention_bwd_preprocess_kernel",
        grid=(1, 1),
        arrays=(o, o),
        scalars=(32, 1),
        out_shapes=(jax.ShapeDtypeStruct((1, 1, 32), jnp.float32),),
        constexprs={"BLOCK_M": 16, "H": 16, "HEAD": 16},
        interpret=True,
    )
    delta = np.asarray(delta)
    assert np.all(delta[..., :16] == 16.0)
    assert np.all(np.isnan(delta[..., 16:]))


def test_triton_backend_raises_clearly_without_gpu():
    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present")
    q = jnp.ones((1, 2, 1, 4))
    with pytest.raises(RuntimeError, match="needs a CUDA GPU and jax-triton"):
        kernels.attention(q, q, q, backend="triton")


def test_import_kernels_is_light():
    import subprocess
    import sys

    code = "import sys, kernels; print([m for m in ('torch', 'triton', 'jax_triton') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _gpu_ready() -> tuple[bool, str]:
    if jax.default_backend() != "gpu":
        return False, "no CUDA GPU visible to JAX"
    try:
        import jax_triton  # noqa: F401
    except ImportError:
        return False, "jax_triton is not installed (pip install -e '.[gpu]')"
    return True, ""


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready()[0], reason=f"backend 'triton' needs a GPU: {_gpu_ready()[1]}")
class TestTritonGPU:
    """Backend triton vs the reference at HIGHEST matmul precision, per-dtype tolerances (kernels.tolerances)."""

    @pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
    @pytest.mark.parametrize("causal", [False, True])
    @pytest.mark.parametrize("padding", PADDINGS)
    @pytest.mark.parametrize("h", [32, 50, 64, 128])
    def test_self_attention(self, dtype, causal, padding, h):
        case = _inputs(0, 4, 200, 200, 2, h, padding, dtype)
        _compare((*case, causal), *tolerance(dtype), backend="triton")

    @pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
    @pytest.mark.parametrize("h", [50, 64])
    def test_target_attention(self, dtype, h):
        case = _inputs(0, 8, 64, 200, 2, h, "both", dtype)
        _compare((*case, False), *tolerance(dtype), backend="triton")

    def test_grid_beyond_65535_rows_times_heads(self):
        # B*N = 70,000 > 65,535: launches only because B*N is on grid axis 0
        case = _inputs(0, 35_000, 16, 16, 2, 16, "right", jnp.bfloat16)
        _compare((*case, True), *tolerance(jnp.bfloat16), backend="triton")
