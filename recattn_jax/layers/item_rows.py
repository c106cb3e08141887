"""The marker of variables whose leading axis is indexed by item id (row i = item i, row 0 = padding).

A mesh shards exactly the marked variables over its `model` axis and pads exactly their rows
(recattn_jax/parallel/mesh.py); nothing is inferred from a shape or a name. Mark where the variable is
created: `nnx.Embed(..., embedding_metadata=ITEM_ROWS)`, `nnx.Param(value, **ITEM_ROWS)`, or any
`nnx.Variable(value, **ITEM_ROWS)` (side-feature constants, counts). The mark is variable metadata, so
it survives `nnx.split`/`merge`, jit, and the optimizer's moment variables (nnx.Optimizer copies the
metadata of the parameter each moment belongs to).
"""

from __future__ import annotations

from types import MappingProxyType

from flax import nnx

ITEM_ROWS = MappingProxyType({"item_rows": True})


def is_item_rows(variable) -> bool:
    """Whether `variable` (an nnx.Variable; anything else is not) was marked with ITEM_ROWS."""
    return isinstance(variable, nnx.Variable) and bool(variable.get_metadata().get("item_rows", False))
