"""The best model state (by valid NDCG@10) kept with orbax in the run directory.

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
