"""Kernels inside `shard_map`: values typed as varying over the manual mesh axes their inputs vary over.

Under `shard_map` every value carries the mesh axes it may differ over between devices. A kernel launch
(jax_triton's call, the interpreter's pure_callback) and a constant (a scan's initial carry) are typed as
the same on every device; mixing them with varying inputs fails the type checks of `lax.scan` and
`custom_vjp`, and a psum of a value wrongly typed as the same on every device counts it once per device.
Outside `shard_map` there are no manual axes and these functions return their argument unchanged.
"""

from __future__ import annotations

import jax


def varying_axes(x: jax.Array) -> frozenset:
    """The manual mesh axes `x` varies over (`jax.typeof(x).manual_axis_type.varying`, jax >= 0.10).

    Raises where the aval has no such field: a jax that renamed it would otherwise make every cast here a
    no-op, and gradients on a mesh silently wrong."""
    aval = jax.typeof(x)
    axis_type = getattr(aval, "manual_axis_type", None)
    if axis_type is None:
        raise RuntimeError(
            f"jax {jax.__version__}: {type(aval).__name__} has no manual_axis_type; kernels/mesh_axes.py reads the "
            "mesh axes a value varies over from it (jax 0.10-0.11) and needs updating for this version"
        )
    return frozenset(axis_type.varying)


def vary_like(x: jax.Array, *like: jax.Array) -> jax.Array:
    """`x` cast to vary over every mesh axis that one of `like` varies over and `x` does not yet."""
    axes = frozenset().union(*(varying_axes(y) for y in like)) - varying_axes(x)
    return jax.lax.pcast(x, tuple(sorted(axes)), to="varying") if axes else x
