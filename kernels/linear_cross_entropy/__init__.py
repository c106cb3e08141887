"""Linear cross-entropy: per-position softmax CE of hidden @ table^T without [P, I] logits in memory.

Axis legend: P positions, D model dim, I items (row 0 = padding, never a candidate).
The op's dispatch (argument checks, defaults, backend choice) lives here; `auto` follows the rule of
`kernels.dispatch.resolve_backend`, the one place it is written.
"""

from __future__ import annotations

import importlib

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from kernels.dispatch import Backend, resolve_backend
from kernels.linear_cross_entropy.reference import linear_cross_entropy_reference

# items per scan step of the reference: measured on 2 CPU cores at P=13000, D=64, I=3417 (fwd+bwd), 128 beat
# 64/256/512 and one whole-catalogue matmul (2.5x slower, as slow as XLA's CE): [P, K] tiles stay in cache
DEFAULT_CHUNK = 128


def linear_cross_entropy(
    hidden: Float[Array, "P D"],
    table: Float[Array, "I D"],
    targets: Int[Array, " P"],
    *,
    valid: Bool[Array, " P"] | None = None,
    chunk: int = DEFAULT_CHUNK,
    backend: str | Backend = "auto",
) -> Float[Array, " P"]:
    """NLL_p = logsumexp_{i>=1}(hidden_p . table_i) - hidden_p . table_{target_p}, in fp32.

    Row 0 of the table is padding and never a candidate. Positions with target 0 or valid False get
    NLL 0 and zero gradient. Gradients flow to hidden and table (in their dtypes); bf16 accumulates
    in fp32. `chunk` is the reference's items per scan step (peak memory O(P * chunk)); the Triton
    kernels tile by their own block sizes and ignore it.
    """
    if hidden.ndim != 2 or table.ndim != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden must be [P,D] and table [I,D] with the same D; got {hidden.shape}, {table.shape}")
    if table.shape[0] < 2:
        raise ValueError(f"table needs the padding row and at least one item; got {table.shape[0]} rows")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"targets must have shape [P]=({hidden.shape[0]},), got {targets.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    valid = jnp.ones(targets.shape, bool) if valid is None else jnp.asarray(valid, bool)
    if valid.shape != targets.shape:
        raise ValueError(f"valid must have shape [P]=({targets.shape[0]},), got {valid.shape}")
    chosen = resolve_backend(backend, "linear_cross_entropy")
    if chosen is Backend.REFERENCE:
        return linear_cross_entropy_reference(hidden, table, targets, valid, chunk)
    # imported on first use, like the other ops' Triton bindings (kernels.dispatch._load_triton)
    binding = importlib.import_module("kernels.linear_cross_entropy.binding")
    return binding.linear_cross_entropy_triton(hidden, table, targets, valid, interpret=chosen is Backend.INTERPRET)


__all__ = ["DEFAULT_CHUNK", "linear_cross_entropy"]
