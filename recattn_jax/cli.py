"""How the entry points end: every user-facing failure is one line on stderr, never a traceback.

- `RecattnError` (bad data, impossible config, damaged checkpoint, divergence, out of memory) and `OSError`
  (a full disk, a read-only directory): `error: ...`, exit 2.
- Ctrl-C (SIGINT) and SIGTERM: `interrupted ...` with how to resume, exit 130 / 143; during training the
  step in progress ends and is saved first (`train/stop_requests.py`); checkpoints are written to a temporary
  folder and renamed, so the last complete one stays valid.
- Hydra's own errors before the run starts (an unknown key, a value of the wrong type): one line, exit 2
  (`hydra_entry`).
- `train.stop_after_steps` reached (a planned stop, resumable): how to continue, exit 3 (`EXIT_STOPPED`), so that
  a script can tell it from a finished run (0) and resume until it finishes.
`RECATTN_DEBUG=1` re-raises instead, with the full traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from recattn_jax.errors import RecattnError

DEBUG_ENV = "RECATTN_DEBUG"
EXIT_USER_ERROR = 2
EXIT_STOPPED = 3  # train.stop_after_steps was reached; `train.resume=true` continues the run
T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the run unwinds the same way."""

    exit_code = 128 + signal.SIGTERM


class UserErrorExit(SystemExit):
    """Exit code 2 after a user error was printed as one line; `reason` is that line (without "error: ")."""

    def __init__(self, reason: str):
        super().__init__(EXIT_USER_ERROR)
        self.reason = reason


def _raise_terminated(signum, frame):
    raise Terminated()


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


class _HeldStderr:
    """Holds what is written to stderr until the task starts; Hydra's composition errors come before it."""

    def __init__(self, stream):
        self.stream, self.held, self.holding = stream, [], True

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.stream.write("".join(self.held))
            self.held = []

    def __getattr__(self, name):
        return getattr(self.stream, name)


_held: _HeldStderr | None = None


def hydra_entry(main: Callable[[], object]) -> None:
    """Call a `@hydra.main` function; if Hydra fails before the task starts, say why in one line, exit 2."""
    global _held
    if debug():
        main()
        return
    _held = held = _HeldStderr(sys.stderr)
    sys.stderr = held
    try:
        main()
    except SystemExit as e:
        if held.holding and e.code not in (0, None):
            lines = [line.strip() for line in "".join(held.held).splitlines() if line.strip()]
            lines = [
                line
                for line in lines
                if "HYDRA_FULL_ERROR" not in line and not line.startswith(("full_key", "reference_type", "object_type"))
            ]
            if any(line.startswith("Traceback (most recent call last)") for line in lines):
                lines = lines[-1:]  # Hydra printed a traceback (e.g. an uncreatable run dir): its last line says why
            held.held, sys.stderr = [], held.stream  # said in one line instead
            said = "; ".join(line.rstrip(".") for line in lines[:3]) or "the command line cannot be read"
            print(f"error: {said}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)
        raise
    finally:
        if sys.stderr is held:
            sys.stderr = held.stream
        held.release()
        _held = None


def task_started() -> None:
    """The Hydra task is running: stderr passes through again."""
    if _held is not None:
        _held.release()
        sys.stderr = _held.stream


def _closing_checkpoints(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BaseException:
        from recattn_jax.train.checkpoint import close_open_checkpoints

        close_open_checkpoints()  # a run that ends by an exception: else orbax's threads print tracebacks at exit
        sys.unraisablehook = _quiet_closed_loop(sys.unraisablehook)
        raise


def _quiet_closed_loop(hook):
    """An unraisable-exception hook that drops orbax's 'Event loop is closed' from a checkpoint write cut short."""

    def quiet(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        hook(unraisable)

    return quiet


def run_entry(fn: Callable[[], T], on_interrupt: Callable[[], str] | None = None) -> T:
    """`fn()`; a user error or an interruption ends the process with one line (`on_interrupt()` adds a hint)."""
    task_started()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _closing_checkpoints(fn)
    except (RecattnError, OSError) as e:  # OSError: the machine's, not the code's (a full disk, a vanished folder)
        if debug():
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise UserErrorExit(str(e)) from None
    except KeyboardInterrupt as e:
        if debug():
            raise
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted (Ctrl-C)"
        hint = on_interrupt() if on_interrupt is not None else ""
        print(f"{what}{'; ' + hint if hint else ''}", file=sys.stderr, flush=True)
        sys.exit(getattr(e, "exit_code", 128 + signal.SIGINT))
