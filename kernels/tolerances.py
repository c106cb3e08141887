"""How close a kernel must come to the reference, per input dtype: (forward, gradients).

Metric: max|got - want| / max(max|want|, 1) over outputs or dq, dk, dv (tests/kernels/kernel_cases.rel_err,
benchmarks/bench_attention.check). The reference must be exact where it judges: on a GPU it runs
under `jax.default_matmul_precision("highest")` (JAX's default there is TF32, ~1e-3 off).
fp32 kernels use IEEE fp32 dots; bf16/fp16 round p and dS to the input dtype before their matmuls.
"""

from __future__ import annotations

import jax.numpy as jnp

TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-4),
    "bfloat16": (2e-2, 3e-2),
    "float16": (5e-3, 1e-2),
}


def tolerance(dtype) -> tuple[float, float]:
    """(forward, gradient) tolerance for inputs of `dtype`."""
    return TOLERANCES[jnp.dtype(dtype).name]
