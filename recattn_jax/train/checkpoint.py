"""Orbax checkpoints in the run directory: the best model (by valid NDCG@10) and the latest training state.

`checkpoints/` holds the best model's weights (what recommendations and test metrics use);
`latest/` holds the whole training state (model, optimizer, step) and the run's position
(`RunPosition` as JSON) every `train.ckpt_every_steps` steps, for `train.resume=true`.

Orbax writes to a temporary directory and renames it when complete, so a crash mid-write never
leaves a partial checkpoint that could be taken for a whole one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx

BEST_METRIC = "valid_NDCG@10"
logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file operation at INFO


class BestCheckpoint:
    def __init__(self, directory: str | Path):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                best_fn=lambda metrics: metrics[BEST_METRIC],
                best_mode="max",
                enable_async_checkpointing=False,
            ),
        )

    def save(self, step: int, model: nnx.Module, value: float) -> None:
        pure = nnx.to_pure_dict(nnx.state(model))
        if step in self.manager.all_steps():  # a resumed run saving again what the interrupted one saved
            self.manager.delete(step)
        self.manager.save(step, args=ocp.args.StandardSave(pure), metrics={BEST_METRIC: float(value)})
        self.manager.wait_until_finished()

    def restore_into(self, model: nnx.Module) -> int:
        """Load the best saved weights into `model`; returns the step they were saved at."""
        step = self.manager.best_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.manager.directory}")
        state = nnx.state(model)
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(nnx.to_pure_dict(state)))
        nnx.replace_by_pure_dict(state, restored)
        nnx.update(model, state)
        return step

    def close(self) -> None:
        self.manager.close()


class LatestCheckpoint:
    """The latest (training state, position) pair; the two are written together, so they always agree."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False),
        )

    def save(self, step: int, state: nnx.State, position: dict) -> None:
        if step in self.manager.all_steps():
            self.manager.delete(step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(nnx.to_pure_dict(state)), position=ocp.args.JsonSave(position)
        )
        self.manager.save(step, args=args)
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, state: nnx.State) -> tuple[nnx.State, dict] | None:
        """`state` (its structure, as a template) filled from the latest checkpoint, and the position; None if none."""
        step = self.manager.latest_step()
        if step is None:
            return None
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(nnx.to_pure_dict(state)), position=ocp.args.JsonRestore()
        )
        restored = self.manager.restore(step, args=args)
        nnx.replace_by_pure_dict(state, restored["state"])
        return state, dict(restored["position"])

    def close(self) -> None:
        self.manager.close()
