"""How the entry points end: every user-facing failure is one line on stderr, never a traceback.

- `RecattnError` (bad data, impossible config, damaged checkpoint, divergence): `error: ...`, exit 2.
- Ctrl-C (SIGINT) and SIGTERM: `interrupted ...` with how to resume, exit 130 / 143; checkpoints are
  written to a temporary folder and renamed, so the last complete one stays valid.
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
T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the run unwinds the same way."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum, frame):
    raise Terminated()


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def run_entry(fn: Callable[[], T], on_interrupt: Callable[[], str] | None = None) -> T:
    """`fn()`; a user error or an interruption ends the process with one line (`on_interrupt()` adds a hint)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return fn()
    except RecattnError as e:
        if debug():
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt as e:
        if debug():
            raise
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted (Ctrl-C)"
        hint = on_interrupt() if on_interrupt is not None else ""
        print(f"{what}{'; ' + hint if hint else ''}", file=sys.stderr, flush=True)
        sys.exit(getattr(e, "exit_code", 128 + signal.SIGINT))
