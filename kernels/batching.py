"""jax.vmap for batch-major kernel calls: fold the mapped axis into the leading batch axis B.

jax_triton's primitive has no batching rule (it raises under vmap), and a pure_callback would loop.
Every kernel call here takes and returns arrays whose axis 0 is the batch B, with rows independent,
so vmapping over an extra axis V is exactly one call on V*B rows.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def fold_vmap_into_batch(fn: Callable) -> Callable:
    """Wrap `fn(*arrays) -> tuple of arrays` (all batch-major) so vmap reshapes instead of looping."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        # an unmapped argument is shared by every mapped row: broadcast it (costs memory, not kernels)
        args = [
            x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, batched in zip(args, in_batched, strict=True)
        ]
        flat = [x.reshape(axis_size * x.shape[1], *x.shape[2:]) for x in args]
        outs = wrapped(*flat)  # the wrapped call, so nested vmaps fold too
        outs = tuple(y.reshape(axis_size, y.shape[0] // axis_size, *y.shape[1:]) for y in outs)
        return outs, tuple(True for _ in outs)

    return wrapped
