"""The one dispatch point for the attention ops: argument checks, defaults and backend choice.

Every backend has the same signature and the same semantics; the pure-JAX reference is both the
CPU/TPU fallback and the oracle. Triton backends are imported lazily so that `import kernels`
never needs a GPU, jax_triton or torch.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from kernels.attention.reference import attention_reference, dropout_keep
from kernels.attention.xla import attention_xla
from kernels.attention_pool.reference import attention_pool_reference


class Backend(enum.StrEnum):
    AUTO = "auto"
    REFERENCE = "reference"
    XLA = "xla"  # plain XLA with a hand-written (recomputing) backward: the fast CPU/TPU path
    TRITON = "triton"  # fused Triton kernels on a GPU
    INTERPRET = "interpret"  # the same Triton kernels run by Triton's CPU interpreter


# Where the Triton implementation of each op lives: module path, function name. Imported lazily.
_TRITON_IMPLEMENTATIONS = {
    "attention": ("kernels.attention.binding", "attention_triton"),
    "attention_pool": ("kernels.attention_pool.binding", "attention_pool_triton"),
}


def parse_backend(backend: str | Backend) -> Backend:
    try:
        return Backend(backend)
    except ValueError:
        choices = ", ".join(b.value for b in Backend)
        raise ValueError(f"unknown attention backend {backend!r}; choose one of: {choices}") from None


def resolve_backend(backend: str | Backend, op: str = "attention") -> Backend:
    """The rule for `auto`, written once: Triton where a GPU runs it, else `xla` for attention (measured
    faster than the reference's autodiff on CPU, benchmarks/RESULTS.md) and the reference for the pool.

    An explicit `triton` or `interpret` that cannot run here raises a RuntimeError saying what to install.
    """
    backend = parse_backend(backend)
    if backend is Backend.AUTO:
        if _gpu_triton_available():
            return Backend.TRITON
        return Backend.XLA if op == "attention" else Backend.REFERENCE
    if backend is Backend.TRITON and not _gpu_triton_available():
        raise RuntimeError(
            f"backend 'triton' needs a CUDA GPU and jax-triton==0.3.1: pip install -e '.[gpu]' "
            f"(JAX backend: {jax.default_backend()!r}, triton/jax_triton found: "
            f"{_installed('triton')}/{_installed('jax_triton')}); use backend 'auto' or 'reference' here"
        )
    if backend is Backend.INTERPRET and not (_installed("triton") and _installed("torch")):
        raise RuntimeError(
            "backend 'interpret' runs the Triton kernels in Triton's CPU interpreter and needs "
            "triton and torch (CPU build): pip install -e '.[test]'"
        )
    return backend


def _installed(module: str) -> bool:
    # find_spec locates a top-level package without importing it (import kernels stays light)
    return importlib.util.find_spec(module) is not None


def _gpu_triton_available() -> bool:
    return jax.default_backend() == "gpu" and _installed("triton") and _installed("jax_triton")


def _load_triton(op: str) -> Callable:
    module, name = _TRITON_IMPLEMENTATIONS[op]
    return getattr(importlib.import_module(module), name)


def _bounds(kv_start, kv_end, b: int, s: int) -> tuple[Int[Array, " B"], Int[Array, " B"]]:
    kv_start = jnp.zeros((b,), jnp.int32) if kv_start is None else jnp.asarray(kv_start, jnp.int32)
    kv_end = jnp.full((b,), s, jnp.int32) if kv_end is None else jnp.asarray(kv_end, jnp.int32)
    for name, x in (("kv_start", kv_start), ("kv_end", kv_end)):
        if x.shape != (b,):
            raise ValueError(f"{name} must have shape [B]=({b},), got {x.shape}")
    return kv_start, kv_end


def _check_kv(q_batch: int, head_shape: tuple, k, v) -> None:
    if k.ndim != 4 or k.shape != v.shape:
        raise ValueError(f"k and v must both be [B,S,N,H]; got k {k.shape}, v {v.shape}")
    if k.shape[0] != q_batch or k.shape[2:] != head_shape:
        raise ValueError(f"k/v shape {k.shape} does not match q's batch {q_batch} and [N,H]={head_shape}")


def attention(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    *,
    kv_start: Int[Array, " B"] | None = None,
    kv_end: Int[Array, " B"] | None = None,
    causal: bool = False,
    scale: float | None = None,
    backend: str | Backend = "auto",
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
) -> Float[Array, "B T N H"]:
    """Multi-head attention, softmax(scale * q k^T) v, with per-row key bounds and optional causality.

    Key j of row b is valid iff kv_start[b] <= j < kv_end[b] (defaults: all valid); causal (T == S)
    lets query i see key j only if j <= i. A query with no visible key returns zeros, never NaN.
    Attention dropout: with `dropout_key` (training), each softmax weight is dropped with probability
    `dropout_rate` and the rest scaled by 1 / (1 - rate), as torch.nn.MultiheadAttention's `dropout`. It runs
    on the reference and xla backends: `auto` picks xla for it where it would pick Triton, and an explicit
    `triton` / `interpret` with dropout is refused (the fused kernels have no dropout).
    """
    if q.ndim != 4:
        raise ValueError(f"q must be [B,T,N,H], got shape {q.shape}")
    _check_kv(q.shape[0], q.shape[2:], k, v)
    if causal and q.shape[1] != k.shape[1]:
        raise ValueError(f"causal attention needs T == S, got T={q.shape[1]}, S={k.shape[1]}")
    kv_start, kv_end = _bounds(kv_start, kv_end, q.shape[0], k.shape[1])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    chosen = resolve_backend(backend, "attention")
    keep = None
    if dropout_key is not None and dropout_rate > 0.0:
        if chosen in (Backend.TRITON, Backend.INTERPRET):
            if parse_backend(backend) is not Backend.AUTO:
                raise ValueError(
                    f"attention dropout (rate {dropout_rate}) runs on the reference and xla backends; the "
                    f"{chosen.value} kernels have none: use backend 'auto', 'xla' or 'reference', or rate 0"
                )
            chosen = Backend.XLA
        b, t, n, _ = q.shape
        keep = dropout_keep(dropout_key, (b, n, t, k.shape[1]), dropout_rate)
    if chosen is Backend.REFERENCE:
        return attention_reference(q, k, v, kv_start, kv_end, causal, scale, keep)
    if chosen is Backend.XLA:
        return attention_xla(q, k, v, kv_start, kv_end, keep, causal, scale)
    impl = _load_triton("attention")
    return impl(q, k, v, kv_start, kv_end, causal, scale, interpret=chosen is Backend.INTERPRET)


def attention_pool(
    q: Float[Array, "B N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    *,
    kv_start: Int[Array, " B"] | None = None,
    kv_end: Int[Array, " B"] | None = None,
    scale: float | None = None,
    backend: str | Backend = "auto",
) -> Float[Array, "B N H"]:
    """One query per row and head: out = sum_j softmax_j(scale * q . k_j) v_j over the valid keys."""
    if q.ndim != 3:
        raise ValueError(f"q must be [B,N,H], got shape {q.shape}")
    _check_kv(q.shape[0], q.shape[1:], k, v)
    kv_start, kv_end = _bounds(kv_start, kv_end, q.shape[0], k.shape[1])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    chosen = resolve_backend(backend, "attention_pool")
    if chosen in (Backend.REFERENCE, Backend.XLA):  # the pool's reference is already one fused XLA pass
        return attention_pool_reference(q, k, v, kv_start, kv_end, scale)
    impl = _load_triton("attention_pool")
    return impl(q, k, v, kv_start, kv_end, scale, interpret=chosen is Backend.INTERPRET)
