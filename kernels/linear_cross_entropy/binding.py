"""JAX binding of the Triton linear cross-entropy kernels: a custom_vjp with residuals (hidden, table, targets, lse).

Axis legend: P positions, D model dim, I items; SPLIT_I item ranges, SPLIT_P position ranges (binding's config).
Positions without a target reach the kernels as target -1; candidates are table rows
[bounds[0], bounds[1]), an int32 array (it may be traced, e.g. per shard). The kernels take no float
scalars (jax-triton types a Python float as fp64); sizes are Python ints (i32).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from kernels.attention.binding import SUPPORTED_DTYPES
from kernels.triton_launch import cdiv, launch, next_power_of_2

_KERNELS = "kernels.linear_cross_entropy.triton_kernels"
# enough programs per kernel to fill an H200's 132 SMs a few times over (P or I may be small)
_TARGET_PROGRAMS = 4 * 132
MAX_DIM = 256  # whole rows of D sit in registers (no loop over D): recommender widths, not LLM ones


def _split(blocks: int, other_programs: int) -> tuple[int, int]:
    """(ranges, blocks per range) so that ranges x other_programs >= _TARGET_PROGRAMS, no range empty."""
    wanted = max(1, min(blocks, cdiv(_TARGET_PROGRAMS, other_programs)))
    per_range = cdiv(blocks, wanted)
    return cdiv(blocks, per_range), per_range


def block_config(p: int, i: int, d: int, dtype, interpret: bool) -> dict:
    """Tile sizes: 64 x 64 logits tiles (128 items for 16-bit inputs), BLOCK_D = D padded to a power of 2,
    and the loop splits (SPLIT_I item ranges for the forward and dhidden, SPLIT_P position ranges for dtable).

    Untuned guesses for the GPU, awaiting a measurement; the interpreter takes whatever is small.
    """
    wide = jnp.dtype(dtype).itemsize == 2 and not interpret
    block_d = max(16, next_power_of_2(d))  # tl.dot needs every dimension >= 16
    block_p = min(64, max(16, next_power_of_2(p)))
    block_i = min(128 if wide and block_d <= 128 else 64, max(16, next_power_of_2(i)))
    p_blocks, i_blocks = cdiv(p, block_p), cdiv(i, block_i)
    split_i, i_blocks_per_split = _split(i_blocks, p_blocks)
    split_p, p_blocks_per_split = _split(p_blocks, i_blocks)
    return {
        "BLOCK_P": block_p,
        "BLOCK_I": block_i,
        "BLOCK_D": block_d,
        "split_i": split_i,
        "i_per_split": i_blocks_per_split * block_i,
        "split_p": split_p,
        "p_per_split": p_blocks_per_split * block_p,
        "num_warps": 8 if block_d >= 128 else 4,
    }


def _meta(cfg: dict, dtype, interpret: bool) -> dict:
    return {
        "BLOCK_P": cfg["BLOCK_P"],
        "BLOCK_I": cfg["BLOCK_I"],
        "BLOCK_D": cfg["BLOCK_D"],
        "IEEE": dtype == jnp.float32,
        "UPCAST": interpret and dtype != jnp.float32,
    }


def _sizes(hidden, table) -> tuple[int, int, int]:
    # Python ints: jax-triton types them i32 below 2**31 (np.int32 it rejects), the interpreter takes them too
    return int(hidden.shape[0]), int(table.shape[0]), int(hidden.shape[1])


def _forward(hidden, table, targets, bounds, interpret):
    """lse [P] and target logit [P], fp32: the item ranges' partials combined here."""
    p, i, d = hidden.shape[0], table.shape[0], hidden.shape[1]
    cfg = block_config(p, i, d, hidden.dtype, interpret)
    lse_part, target_part = launch(
        _KERNELS,
        "linear_ce_fwd_kernel",
        grid=(cdiv(p, cfg["BLOCK_P"]), cfg["split_i"]),
        arrays=(hidden, table, targets, bounds),
        scalars=(*_sizes(hidden, table), int(cfg["i_per_split"])),
        out_shapes=(jax.ShapeDtypeStruct((cfg["split_i"], p), jnp.float32),) * 2,
        constexprs=_meta(cfg, hidden.dtype, interpret),
        interpret=interpret,
        num_warps=cfg["num_warps"],
        num_stages=2,
    )
    if cfg["split_i"] == 1:
        return lse_part[0], target_part[0]
    # logsumexp of the ranges; all -inf (no candidate) gives -inf, never NaN
    top = jnp.max(lse_part, axis=0)
    shift = jnp.where(jnp.isneginf(top), 0.0, top)
    lse = shift + jnp.log(jnp.sum(jnp.exp(lse_part - shift), axis=0))
    return lse, jnp.sum(target_part, axis=0)  # exactly one range holds a target


def _backward(hidden, table, targets, bounds, lse, g_lse, g_target, interpret):
    p, i, d = hidden.shape[0], table.shape[0], hidden.shape[1]
    cfg = block_config(p, i, d, hidden.dtype, interpret)
    common = {
        "arrays": (hidden, table, targets, bounds, lse, g_lse, g_target),
        "constexprs": _meta(cfg, hidden.dtype, interpret),
        "interpret": interpret,
        "num_warps": cfg["num_warps"],
        "num_stages": 2,
    }
    (d_hidden,) = launch(
        _KERNELS,
        "linear_ce_bwd_dhidden_kernel",
        grid=(cdiv(p, cfg["BLOCK_P"]), cfg["split_i"]),
        scalars=(*_sizes(hidden, table), int(cfg["i_per_split"])),
        out_shapes=(jax.ShapeDtypeStruct((cfg["split_i"], p, d), jnp.float32),),
        **common,
    )
    (d_table,) = launch(
        _KERNELS,
        "linear_ce_bwd_dtable_kernel",
        grid=(cdiv(i, cfg["BLOCK_I"]), cfg["split_p"]),
        scalars=(*_sizes(hidden, table), int(cfg["p_per_split"])),
        out_shapes=(jax.ShapeDtypeStruct((cfg["split_p"], i, d), jnp.float32),),
        **common,
    )
    # inside shard_map `launch` types the gradients as varying wherever any input does; the custom VJP checks them
    # against their primal inputs, so an input left typed as the same on every device of such an axis is refused
    # (cast it first, as sharded_ce does: the cast's transpose sums its gradient), never left unsummed.
    # fp32 partials summed in a fixed order: deterministic, unlike atomics
    return jnp.sum(d_hidden, axis=0).astype(hidden.dtype), jnp.sum(d_table, axis=0).astype(table.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _lse_and_target_logit(hidden, table, targets, bounds, interpret):
    return _forward(hidden, table, targets, bounds, interpret)


def _fwd(hidden, table, targets, bounds, interpret):
    lse, target_logit = _forward(hidden, table, targets, bounds, interpret)
    return (lse, target_logit), (hidden, table, targets, bounds, lse)


def _bwd(interpret, residuals, cotangents):
    hidden, table, targets, bounds, lse = residuals
    g_lse, g_target = (g.astype(jnp.float32) for g in cotangents)
    d_hidden, d_table = _backward(hidden, table, targets, bounds, lse, g_lse, g_target, interpret)
    return d_hidden, d_table, None, None  # integer targets and bounds have no cotangent


_lse_and_target_logit.defvjp(_fwd, _bwd)


def linear_lse_and_target_logit_triton(
    hidden: Float[Array, "P D"],
    table: Float[Array, "I D"],
    targets: Int[Array, " P"],
    has_target: Bool[Array, " P"],
    bounds: Int[Array, "2"],
    *,
    interpret: bool,
) -> tuple[Float[Array, " P"], Float[Array, " P"]]:
    """(lse over candidate rows, target logit), see kernels.linear_lse_and_target_logit: Triton on the GPU
    or in Triton's CPU interpreter."""
    if hidden.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"Triton linear_cross_entropy supports float32, bfloat16 and float16; got {hidden.dtype}")
    if hidden.shape[1] > MAX_DIM:
        raise ValueError(f"Triton linear_cross_entropy holds D in registers: D <= {MAX_DIM}, got {hidden.shape[1]}")
    # the kernels read both operands in one dtype; the cast's transpose returns dtable in table's dtype
    table = table.astype(hidden.dtype)
    targets = jnp.where(has_target, targets, -1).astype(jnp.int32)  # -1: no target logit here
    bounds = jnp.clip(jnp.asarray(bounds, jnp.int32), 0, table.shape[0])
    return _lse_and_target_logit(hidden, table, targets, bounds, interpret)
