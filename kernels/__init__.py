"""Fused attention ops for recommenders: one folder per op (kernel, binding, reference).

`import kernels` needs only JAX; the Triton backends load their dependencies when first used.
"""

from kernels.dispatch import Backend, attention, attention_pool, parse_backend, resolve_backend
from kernels.linear_cross_entropy import linear_cross_entropy, linear_lse_and_target_logit

__all__ = [
    "Backend",
    "attention",
    "attention_pool",
    "linear_cross_entropy",
    "linear_lse_and_target_logit",
    "parse_backend",
    "resolve_backend",
]
