"""The run's steps: epochs, and each epoch in segments that end at a checkpoint (`train.ckpt_every_steps`), at
`train.stop_after_steps` or at the epoch's end. The run ends after `train.epochs` (at most `train.max_steps`
steps) or when model selection stops it early.

A segment's losses reach the host once, at its end: that is where they are checked for divergence, so the
checks cost no extra sync per step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from recattn_jax.config import TrainConfig
from recattn_jax.parallel.distributed import is_primary
from recattn_jax.train.checkpoint import LatestCheckpoint
from recattn_jax.train.divergence import check_losses
from recattn_jax.train.epoch import planned_steps, run_epoch
from recattn_jax.train.logs import RunLog
from recattn_jax.train.lr_schedule import learning_rate
from recattn_jax.train.memory import explain_out_of_memory, training_keys
from recattn_jax.train.run_setup import RunSetup
from recattn_jax.train.run_state import RunPosition, RunStopped
from recattn_jax.train.stop_requests import StopRequests


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int
    ckpt_every: int  # train.ckpt_every_steps; 0: no checkpoint
    stop_at: int | None  # train.stop_after_steps; None when unset or when a resumed run is already past it
    eval_every: int  # validate every that many epochs, and after the last step

    @classmethod
    def of(cls, train: TrainConfig, num_rows: int, start_step: int) -> Schedule:
        steps_per_epoch = math.ceil(num_rows / train.batch_size)
        total_steps = planned_steps(train, num_rows)
        stop_at = train.stop_after_steps
        if stop_at is not None and stop_at <= start_step:
            stop_at = None
        return cls(steps_per_epoch, total_steps, train.ckpt_every_steps, stop_at, train.eval_every)

    def epoch_steps(self, pos: RunPosition) -> int:
        """The steps of the epoch in progress: all of its batches, unless the run ends within it."""
        return min(self.steps_per_epoch, pos.epoch_step + self.total_steps - pos.step)

    def segment_steps(self, pos: RunPosition) -> int:
        """The steps from `pos` to the segment's end: the next checkpoint, the stop or the epoch's end."""
        n = self.epoch_steps(pos) - pos.epoch_step
        if self.ckpt_every:
            n = min(n, self.ckpt_every - pos.step % self.ckpt_every)
        if self.stop_at is not None:
            n = min(n, self.stop_at - pos.step)
        return n

    def checkpoints(self, step: int) -> bool:
        return bool(self.ckpt_every) and step % self.ckpt_every == 0

    def stops(self, step: int) -> bool:
        """`train.stop_after_steps` is reached with steps still to train."""
        return self.stop_at is not None and self.stop_at <= step < self.total_steps

    def validates(self, pos: RunPosition) -> bool:
        return pos.epoch % self.eval_every == 0 or pos.step >= self.total_steps


class StepProgress:
    """The progress bar over the run's steps, and a `train` record every `train.log_every_steps` steps."""

    def __init__(self, train: TrainConfig, log: RunLog, total_steps: int, pos: RunPosition):
        """`pos`: where the run starts; its `log_losses` are the steps a resumed run's next record also averages."""
        self.train, self.log = train, log
        self.pending: list = list(pos.log_losses)  # losses since the last record (device values while in a segment)
        start_step = pos.step
        self.lr = learning_rate(train, total_steps)  # a number, or a schedule of the step
        disable = not (train.progress and is_primary())
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=disable)

    def after_step(self, pos: RunPosition, losses: list) -> None:
        """`losses`: those of the segment so far, which began at step `pos.step`. A record averages every step
        since the previous one, across segments, epochs and a resume."""
        self.bar.update(1)
        self.pending.append(losses[-1])
        step = pos.step + len(losses)
        if step % self.train.log_every_steps == 0:
            loss = float(np.mean(np.asarray(jax.device_get(self.pending), np.float32)))
            self.log.train(step=step, epoch=pos.epoch, loss=loss, lr=self.lr_at(step), seconds=pos.train_seconds)
            self.pending = []
            self.bar.set_postfix(loss=f"{loss:.4f}")

    def end_segment(self, pos: RunPosition) -> None:
        """The segment's steps are on the host: keep the unlogged losses in `pos`, which checkpoints save."""
        self.pending = [float(x) for x in np.asarray(jax.device_get(self.pending), np.float32)]
        pos.log_losses = list(self.pending)

    def lr_at(self, step: int) -> float:
        """The learning rate of `step` (`train/lr_schedule.py`)."""
        return float(self.lr(step)) if callable(self.lr) else self.lr

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close()


def train_epochs(
    run: RunSetup,
    state: nnx.State,
    pos: RunPosition,
    schedule: Schedule,
    latest: LatestCheckpoint,
    progress: StepProgress,
    validate: Callable[[nnx.State, RunPosition], None],
    stops: StopRequests | None = None,
) -> nnx.State:
    """Train from `pos` (advanced in place) to the schedule's end; returns the last state.

    `validate(state, pos)` runs at the end of every epoch to validate; the run ends early once it sets
    `pos.early_stopped`. Every checkpoint step the state is checked and saved to `latest`; at
    `train.stop_after_steps` RunStopped is raised. A Ctrl-C or SIGTERM recorded by `stops` ends the step in
    progress (or the validation), saves the state to `latest` and stops the run there."""
    requested = stops.requested if stops is not None else None
    while True:
        if requested is not None and requested():  # came during a validation
            _save_and_stop(run, state, pos, latest, stops)
        if not pos.in_epoch:
            if pos.step >= schedule.total_steps or pos.early_stopped:
                return state
            pos.epoch, pos.in_epoch, pos.epoch_step, pos.epoch_losses = pos.epoch + 1, True, 0, []
        progress.bar.set_description(f"epoch {pos.epoch}")
        while pos.epoch_step < schedule.epoch_steps(pos):
            with explain_out_of_memory(
                f"the training step (epoch {pos.epoch}, after step {pos.step})",
                f"lower {training_keys(run.config)}",
                functools.partial(_kept, latest, run.config.train.ckpt_every_steps),
            ):
                state = train_segment(run, state, pos, schedule.segment_steps(pos), progress, requested)
            if requested is not None and requested():
                _save_and_stop(run, state, pos, latest, stops)
            if schedule.checkpoints(pos.step):
                _checkpoint(run, state, pos, latest)
            if schedule.stops(pos.step):
                raise RunStopped(pos.step, run.workdir, latest.latest_step())
        pos.in_epoch = False
        if schedule.validates(pos):
            validate(state, pos)


def _kept(latest: LatestCheckpoint, ckpt_every: int) -> str:
    """What a crash within the next segment leaves on disk: the latest checkpoint, never a half-written one."""
    step = latest.latest_step()
    if step is None:
        return f"no checkpoint had been written yet (train.ckpt_every_steps={ckpt_every})"
    return f"the latest checkpoint, step {step}, is kept in {latest.directory}"


def _checkpoint(run: RunSetup, state: nnx.State, pos: RunPosition, latest: LatestCheckpoint) -> None:
    run.finite_check(state, pos.step, pos.epoch)  # a diverged state is never saved (it raises instead)
    latest.save(pos.step, state, pos.to_json())


def _save_and_stop(run: RunSetup, state: nnx.State, pos: RunPosition, latest: LatestCheckpoint, stops) -> None:
    _checkpoint(run, state, pos, latest)
    stops.stop()


def train_segment(
    run: RunSetup,
    state: nnx.State,
    pos: RunPosition,
    steps: int,
    progress: StepProgress,
    stop_requested: Callable[[], bool] | None = None,
):
    """At most `steps` steps of the epoch in progress from `pos` (fewer once `stop_requested()`); their losses
    checked, `pos` advanced past them."""
    started = time.perf_counter()
    state, losses = run_epoch(
        run.train_step,
        state,
        run.arrays,
        run.config.train,
        run.config.seed,
        pos.epoch,
        steps,
        functools.partial(progress.after_step, pos),
        start=pos.epoch_step,
        layout=run.layout,
        pack=run.pack,
        seen=run.seen,
        stop_requested=stop_requested,
    )
    if not losses:
        raise RuntimeError(f"epoch {pos.epoch} has no batch after step {pos.epoch_step}")
    losses = [float(x) for x in jax.device_get(losses)]
    check_losses(losses, pos.step, pos.epoch, run.config.train.lr)  # on the host already: no extra sync
    pos.epoch_losses += losses
    progress.end_segment(pos)
    pos.train_seconds += time.perf_counter() - started
    pos.step += len(losses)
    pos.epoch_step += len(losses)
    return state
