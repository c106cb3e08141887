"""`python -m kernels.compile_check`: every kernel compiles for sm_80 and sm_90 through jax-triton's lowering.

Needs jax-triton (pip install -e '.[compile]', part of '.[test]'); no GPU. The full check takes ~155 s
on a shared 2-core CPU (144 kernel compiles, triton 3.9), so it is marked slow.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import triton
import triton.language as tl
from kernel_cases import needs_interpreter

import kernels

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax_triton") is None,
    reason="the compile check needs jax-triton==0.3.1: pip install -e '.[compile]'",
)


@triton.jit
def _scaled_sum_kernel(X, scale, OUT, BLOCK: tl.constexpr, CAST: tl.constexpr):
    x = tl.load(X + tl.arange(0, BLOCK))
    if CAST:
        scale = tl.cast(scale, tl.float32)
    tl.store(OUT, tl.sum(x * scale, 0))


def _scaled_sum_case(scale, cast: bool):
    from kernels.compile_check import Case

    def fn(x):
        import jax_triton

        out = jax.ShapeDtypeStruct((1,), jnp.float32)
        kernel = _scaled_sum_kernel
        return jax_triton.triton_call(x, scale, kernel=kernel, out_shape=out, grid=(1,), BLOCK=16, CAST=cast)

    return Case("toy", f"scale {type(scale).__name__} cast={cast}", fn, (jax.ShapeDtypeStruct((16,), jnp.float32),))


@pytest.mark.parametrize(
    ("scale", "cast", "fp64"),
    # a cast in the kernel leaves an fp64 parameter and a cvt: only an fp32 argument keeps fp64 out
    [(0.5, False, True), (0.5, True, True), (np.float32(0.5), False, False), (np.float32(0.5), True, False)],
)
def test_check_flags_fp64_from_a_python_float(scale, cast, fp64):
    """jax-triton types a Python float as fp64: the check must find fp64 in the PTX then, and only then."""
    from kernels import compile_check

    with compile_check._jax_triton_on_cpu(arch := [90]):
        (compiled,) = compile_check._compile_case(_scaled_sum_case(scale, cast), 90, arch)
    problems = compile_check._problems(compiled)
    assert compiled.kernel == "_scaled_sum_kernel" and ".target sm_90" in compiled.ptx
    assert any("fp64 in PTX" in p for p in problems) == fp64, problems


def test_an_interpreted_launch_leaves_the_compiler_intact():
    """Triton's interpreter patches triton.language for @jit helpers; the launcher must restore it."""
    needs_interpreter()
    from kernels import compile_check

    q = jnp.ones((1, 16, 1, 16), jnp.float32)
    assert np.all(np.isfinite(np.asarray(kernels.attention(q, q, q, backend="interpret"))))
    with compile_check._jax_triton_on_cpu(arch := [90]):
        (compiled,) = compile_check._compile_case(_scaled_sum_case(np.float32(0.5), True), 90, arch)
    assert not compiled.error and ".target sm_90" in compiled.ptx


def test_stubs_are_removed_after_the_check():
    from jax._src.lib import gpu_triton

    from kernels import compile_check, triton_launch

    before = hasattr(gpu_triton, "TritonKernel")
    with compile_check._jax_triton_on_cpu([80]):
        assert gpu_triton.TritonKernel is compile_check._StubKernel
    assert hasattr(gpu_triton, "TritonKernel") == before
    if jax.default_backend() != "gpu":  # the runtime path still refuses to run without a GPU
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            triton_launch.require_gpu_triton()


def test_the_h50_kernels_compile_for_sm90():
    """The fast tier's share of the check: the padded head dim (H=50), both dtypes, causal, every attention kernel."""
    cmd = [sys.executable, "-m", "kernels.compile_check", "--arch", "90", "--only", "causal H=50"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    ok = [line for line in out.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == 2 * 4 and all("sm_90" in line and "H=50" in line for line in ok)  # 2 dtypes x 4 kernels


_LCE_KERNELS = ("linear_ce_fwd_kernel", "linear_ce_bwd_dhidden_kernel", "linear_ce_bwd_dtable_kernel")


def test_the_linear_ce_kernels_compile_for_sm90():
    """The fast tier's share for the linear CE: bf16, padded D=50, ML-1M's catalogue, forward and backward kernels."""
    cmd = [sys.executable, "-m", "kernels.compile_check", "--op", "linear_cross_entropy", "--arch", "90"]
    out = subprocess.run([*cmd, "--only", "bf16 D=50"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = [line for line in out.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    assert len(results) == len(_LCE_KERNELS) and all(line.startswith("ok ") for line in results), results
    for kernel in _LCE_KERNELS:
        assert any(kernel in line and "sm_90" in line and "bf16 D=50" in line for line in results), kernel


@pytest.mark.slow
def test_every_kernel_compiles_for_sm80_and_sm90():
    out = subprocess.run([sys.executable, "-m", "kernels.compile_check"], capture_output=True, text=True, timeout=900)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    ok = [line for line in lines if line.startswith("ok ")]
    # attention: 2 dtypes x 2 causal x 3 H x 4 kernels; pool: 2 dtypes x 3 H x 2 kernels;
    # linear CE: 2 dtypes x 2 D x 3 kernels; each for 2 archs
    assert len(ok) == 2 * (2 * 2 * 3 * 4 + 2 * 3 * 2 + 2 * 2 * 3)
    for kernel in ("attention_fwd_kernel", "attention_bwd_dkdv_kernel", "attention_bwd_dq_kernel",
                   "attention_pool_fwd_kernel", "attention_pool_bwd_kernel", *_LCE_KERNELS):  # fmt: skip
        for arch in ("sm_80", "sm_90"):
            assert any(kernel in line and arch in line for line in ok), (kernel, arch)
    assert not any(line.startswith("FAIL") for line in lines)
