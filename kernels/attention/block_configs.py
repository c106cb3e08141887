"""Block configurations of the attention kernels, per (dtype, HEAD): the default first, then the
candidates an autotuner should try.

HEAD is the head dim rounded up to a power of 2 >= 16 (the tile width). Rows for HEAD <= 64 share the
64 entry. None of these is timed yet: they follow Triton's fused-attention tutorial and FlashAttention-2's
choices, checked only for registers with `python -m kernels.compile_check --ptxas` (triton 3.6.0):
fp32 (IEEE dots on FMA units) spills at 4 warps (fwd 64x32: 255 registers + ~550 B spill) and does not at
8; at HEAD <= 64 no default spills on sm_90 (bf16 dK/dV and dQ spill 28-120 B on sm_80); fp32 causal
forward at HEAD = 128 still spills on sm_90 (~400 B). A GPU run (benchmarks/gpu_check.sh) is what should
reorder the candidates.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from kernels.triton_launch import next_power_of_2


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    block_m: int  # query rows per tile
    block_n: int  # key rows per tile
    num_warps: int
    num_stages: int  # software-pipelining depth of the key (fwd, dQ) or query (dK/dV) loop


_C = BlockConfig

# (dtype name, HEAD) -> (default, *autotuning candidates)
FORWARD: dict[tuple[str, int], tuple[BlockConfig, ...]] = {
    ("bfloat16", 64): (_C(128, 64, 8, 3), _C(64, 64, 4, 3), _C(128, 32, 4, 3), _C(64, 32, 4, 4)),
    ("bfloat16", 128): (_C(128, 64, 8, 2), _C(64, 64, 4, 3), _C(128, 32, 8, 3)),
    ("bfloat16", 256): (_C(64, 32, 8, 2), _C(32, 32, 4, 2)),
    ("float32", 64): (_C(64, 32, 8, 2), _C(32, 32, 4, 2), _C(64, 64, 8, 2)),
    ("float32", 128): (_C(32, 32, 8, 2), _C(64, 32, 8, 2)),
    ("float32", 256): (_C(32, 16, 4, 2), _C(16, 16, 4, 1)),
}

# one config for the delta, dK/dV and dQ kernels of one backward pass
BACKWARD: dict[tuple[str, int], tuple[BlockConfig, ...]] = {
    ("bfloat16", 64): (_C(64, 64, 4, 2), _C(64, 64, 8, 3), _C(32, 64, 4, 2), _C(64, 32, 4, 2)),
    ("bfloat16", 128): (_C(64, 32, 4, 2), _C(32, 32, 4, 2), _C(64, 64, 8, 2)),
    ("bfloat16", 256): (_C(32, 32, 4, 2), _C(16, 16, 4, 1)),
    ("float32", 64): (_C(32, 32, 8, 2), _C(64, 32, 4, 2), _C(32, 32, 4, 3)),
    ("float32", 128): (_C(16, 32, 8, 2), _C(32, 32, 8, 2)),
    ("float32", 256): (_C(16, 16, 4, 2), _C(16, 16, 4, 1)),
}


def _key(dtype, head: int) -> tuple[str, int]:
    name = jnp.dtype(dtype).name
    # fp16 tiles cost what bf16 tiles cost
    name = "bfloat16" if name == "float16" else name
    if head > 256:
        raise ValueError(f"the attention kernels support head dims up to 256, got a {head}-wide tile")
    return name, max(64, head)


def _fit(cfg: BlockConfig, t: int, s: int) -> BlockConfig:
    # short sequences get smaller tiles (>= 16, tl.dot's minimum) instead of mostly masked ones
    return dataclasses.replace(
        cfg,
        block_m=min(cfg.block_m, max(16, next_power_of_2(t))),
        block_n=min(cfg.block_n, max(16, next_power_of_2(s))),
    )


def forward_config(dtype, head: int, t: int, s: int) -> BlockConfig:
    return _fit(FORWARD[_key(dtype, head)][0], t, s)


def backward_config(dtype, head: int, t: int, s: int) -> BlockConfig:
    return _fit(BACKWARD[_key(dtype, head)][0], t, s)
