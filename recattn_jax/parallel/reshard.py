"""Restore a checkpoint of (possibly sharded) model state onto another mesh: 8 devices -> 4 -> 1.

Orbax reads each array straight into the target's sharding; the item-row arrays, padded to a multiple
of the saving mesh's `model` axis, are truncated or zero-padded to the target's row count
(`strict=False`), which only ever touches mesh-pad rows (ids > I).
"""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import SingleDeviceSharding

from recattn_jax.layers.item_rows import is_item_rows
from recattn_jax.parallel.mesh import ParallelLayout


def save_state(path: str | Path, state: nnx.State) -> None:
    """Write `state` (an NNX model state, sharded or not) as an orbax pytree at `path`."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(Path(path).absolute(), nnx.to_pure_dict(state))


def restore_onto(path: str | Path, target: nnx.State, layout: ParallelLayout | None) -> nnx.State:
    """The checkpoint at `path` (a save_state or BestCheckpoint item directory) in `target`'s shapes,
    placed by `layout` (None: one device)."""
    pure = nnx.to_pure_dict(target)
    _check_only_item_rows_differ(path, target)
    if layout is not None:
        shardings = nnx.to_pure_dict(layout.state_shardings(target))  # the marks live on target's variables
    else:
        shardings = jax.tree.map(lambda _: SingleDeviceSharding(jax.devices()[0]), pure)
    restore_args = jax.tree.map(
        lambda leaf, sharding: ocp.ArrayRestoreArgs(sharding=sharding, global_shape=leaf.shape, strict=False),
        pure,
        shardings,
    )
    with ocp.PyTreeCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            Path(path).absolute(), args=ocp.args.PyTreeRestore(item=pure, restore_args=restore_args)
        )
    nnx.replace_by_pure_dict(target, restored)
    return target


def _check_only_item_rows_differ(path: str | Path, target: nnx.State) -> None:
    """Padding/truncating is for mesh-pad rows of item-row variables only: any other shape change is a
    different model."""
    with ocp.PyTreeCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(Path(path).absolute())
    saved = getattr(getattr(metadata, "item_metadata", metadata), "tree", metadata)

    def by_name(tree):  # orbax metadata spells integer keys as strings
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {tuple(str(getattr(k, "key", k)) for k in key_path): leaf for key_path, leaf in leaves}

    have_shapes = {name: tuple(meta.shape) for name, meta in by_name(saved).items()}
    marked = by_name(nnx.to_pure_dict(target, is_item_rows))
    for name, leaf in by_name(nnx.to_pure_dict(target)).items():
        want, have = tuple(leaf.shape), have_shapes.get(name)
        if have is None:
            raise ValueError(f"{path}: no array {'/'.join(name)} in the checkpoint")
        if want != have and (len(want) != len(have) or want[1:] != have[1:] or not marked[name]):
            raise ValueError(f"{path}: {'/'.join(name)} has shape {have}, the target {want}")
