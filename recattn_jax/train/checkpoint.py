"""Orbax checkpoints in the run directory: the best model (by valid NDCG@10) and the latest training state.

`checkpoints/` holds the best model's weights (what recommendations and test metrics use);
`latest/` holds the whole training state (model, optimizer, step) and the run's position
(`RunPosition` as JSON) every `train.ckpt_every_steps` steps, for `train.resume=true`.

Orbax writes to a temporary directory and renames it when complete, so a crash mid-write never
leaves a partial checkpoint that could be taken for a whole one.
"""

from __future__ import annotations

import logging
import sys
import weakref
from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx

from recattn_jax.config import SELECTION_METRIC
from recattn_jax.errors import CheckpointError

BEST_METRIC = "valid_" + SELECTION_METRIC
DAMAGED_HINT = "truncated, corrupt or incomplete, or written for other data or another config"
logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file operation at INFO


class _CheckpointDirectory:
    """An orbax manager over one directory, closed by `close` or on leaving a `with` block, however it is left."""

    directory: Path
    manager: ocp.CheckpointManager

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            self.close()
        except Exception:
            if error is None:
                raise
            # closing after a failed write: the error in flight is the one to report

    def close(self) -> None:
        """Idempotent; `close_open_checkpoints` may have closed the manager already."""
        if self.manager in _OPEN:
            _OPEN.discard(self.manager)
            self.manager.close()


class BestCheckpoint(_CheckpointDirectory):
    def __init__(self, directory: str | Path):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=1,
            best_fn=lambda metrics: metrics[BEST_METRIC],
            best_mode="max",
            enable_async_checkpointing=False,
        )
        self.manager = _open(self.directory, options)

    def save(self, step: int, model: nnx.Module, value: float) -> None:
        pure = nnx.to_pure_dict(nnx.state(model))
        if step in self.manager.all_steps():  # a resumed run saving again what the interrupted one saved
            self.manager.delete(step)
        with _writing(self.directory, step):
            self.manager.save(step, args=ocp.args.StandardSave(pure), metrics={BEST_METRIC: float(value)})
            self.manager.wait_until_finished()

    def restore_into(self, model: nnx.Module) -> int:
        """Load the best saved weights into `model`; returns the step they were saved at."""
        try:
            step = self.manager.best_step()
        except Exception as e:  # metrics missing from a damaged checkpoint's metadata
            raise CheckpointError(f"{self.directory}: the best checkpoint cannot be found ({_first_line(e)})") from e
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.manager.directory}")
        state = nnx.state(model)
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(nnx.to_pure_dict(state)))
            nnx.replace_by_pure_dict(state, restored)
        except Exception as e:
            raise CheckpointError(
                f"{self.directory / str(step)}: the checkpoint cannot be read ({DAMAGED_HINT}): {_first_line(e)}"
            ) from e
        nnx.update(model, state)
        return step


class LatestCheckpoint(_CheckpointDirectory):
    """The latest (training state, position) pair; the two are written together, so they always agree."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self.manager = _open(
            self.directory, ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False)
        )

    def save(self, step: int, state: nnx.State, position: dict) -> None:
        if step in self.manager.all_steps():
            self.manager.delete(step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(nnx.to_pure_dict(state)), position=ocp.args.JsonSave(position)
        )
        with _writing(self.directory, step):
            self.manager.save(step, args=args)
            self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, state: nnx.State) -> tuple[nnx.State, dict] | None:
        """`state` (its structure, as a template) filled from the latest readable checkpoint, and the position;
        None if there is none. A damaged newest step falls back to the older one still on disk, with a warning."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            return None
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(nnx.to_pure_dict(state)), position=ocp.args.JsonRestore()
        )
        failures = []
        for step in steps:
            try:
                restored = self.manager.restore(step, args=args)
                nnx.replace_by_pure_dict(state, restored["state"])
                position = dict(restored["position"])
            except Exception as e:
                failures.append(f"step {step}: {_first_line(e)}")
                continue
            if failures:
                print(f"warning: {self.directory}: {failures[0]}; resuming from the older step {step}", file=sys.stderr)
            return state, position
        raise CheckpointError(
            f"{self.directory}: no checkpoint can be read ({DAMAGED_HINT}); {failures[0]}; start a new run "
            "in a new hydra.run.dir"
        )


def _first_line(error: Exception, limit: int = 200) -> str:
    """The first line of an orbax / tensorstore error, cut to `limit` characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_OPEN: weakref.WeakSet = weakref.WeakSet()  # managers not closed yet (a run that ends by an exception)


def close_open_checkpoints() -> None:
    """Close every manager still open, so that orbax's threads end before the interpreter does."""
    for manager in list(_OPEN):
        try:
            manager.close()
        except Exception:  # closing after a failed write: nothing more to save
            pass
    _OPEN.clear()


def _open(directory: Path, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
    try:
        manager = ocp.CheckpointManager(directory, options=options)
        _OPEN.add(manager)
        return manager
    except Exception as e:
        reason = _first_line(e)
        raise CheckpointError(f"{directory}: the checkpoints cannot be opened ({DAMAGED_HINT}): {reason}") from e


class _writing:
    """Turns a failed write (disk full, permissions) into one line; the steps written before it survive."""

    def __init__(self, directory: Path, step: int):
        self.directory, self.step = directory, step

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or not isinstance(error, Exception):
            return False  # KeyboardInterrupt and friends pass through
        raise CheckpointError(
            f"{self.directory}: writing step {self.step} failed ({_first_line(error)}); the steps written "
            "before it are intact"
        ) from error
