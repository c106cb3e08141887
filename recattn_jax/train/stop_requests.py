"""Ctrl-C and SIGTERM during training: the step in progress ends, the latest state is saved at that step, then
the run stops as it would have (`KeyboardInterrupt` / `cli.Terminated`, exit 130 / 143). A second signal stops at
once; the checkpoints already written stay valid (orbax writes into a temporary folder and renames it).

Without this a stopped run resumes from its last periodic checkpoint (`train.ckpt_every_steps`) and trains
those steps again. Only a single process defers: processes of a multi-process run could see a signal at
different steps and save disagreeing states, so they stop at once as before.
"""

from __future__ import annotations

import signal
import threading

import jax

from recattn_jax.cli import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """While entered, SIGINT and SIGTERM are recorded instead of raised; the training loop asks `requested()`
    after each step and calls `stop()` once the state is saved. Leaving the block with a request not acted on
    (the signal came after the loop's last check) raises it then."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def requested(self) -> bool:
        return self.signum is not None

    def stop(self) -> None:
        """Raise what the recorded signal would have raised."""
        signum, self.signum = self.signum, None
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def _record(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal: do not wait for the save
            self.stop()
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
            self.previous = {s: signal.getsignal(s) for s in SIGNALS}
            for s in SIGNALS:
                signal.signal(s, self._record)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self.previous = {}
        if error is None and self.requested():
            self.stop()
