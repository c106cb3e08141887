"""Fused attention ops for recommenders: one folder per op (kernel, binding, reference).

`import kernels` needs only JAX; the Triton backends load their dependencies when first used.
"""

from kernels.dispatch import Backend, attention, attention_pool, parse_backend, resolve_backend

__all__ = ["Backend", "attention", "attention_pool", "parse_backend", "resolve_backend"]
