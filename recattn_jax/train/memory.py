"""Out of memory: XLA's RESOURCE_EXHAUSTED becomes one line that says which stage asked for how much, what the
device has, and which config keys size that stage.

XLA refuses the allocation with a traceback that names a byte count and nothing of the config; the run then
dies at the first host sync after the step. Only the stages that size their own buffers from the config are
explained: the training step (batch, window, width, negatives) and evaluation (users scored at once).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator

import jax

from recattn_jax.config import Config
from recattn_jax.errors import OutOfMemory

_ASKED = re.compile(r"allocat\w*\s+(\d+)\s+bytes")  # CPU: "allocating N bytes", GPU: "to allocate N bytes"


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e9:,.1f} GB" if num_bytes >= 1e8 else f"{num_bytes / 1e6:,.1f} MB"


def device_memory() -> int | None:
    """Bytes the first device may use: its allocator's limit on GPU, the machine's memory on CPU."""
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    if device.platform == "cpu" and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def _asked_and_held(error: BaseException) -> str:
    found = _ASKED.search(str(error))
    asked = f"XLA asked for {_size(int(found.group(1)))} at once" if found else "XLA could not allocate a buffer"
    held = device_memory()
    device = jax.devices()[0].platform
    return f"{asked}, the {device} device has {_size(held)}" if held else asked


def training_keys(config: Config) -> str:
    """The keys that size a training step's buffers, with their values."""
    keys = [
        f"train.batch_size ({config.train.batch_size})",
        f"model.max_len ({config.model.max_len})",
        f"model.hidden ({config.model.hidden})",
    ]
    if config.loss.name != "ce":  # every other loss draws loss.num_negatives per position (losses.next_item_loss)
        keys.append(f"loss.num_negatives ({config.loss.num_negatives})")
    return ", ".join(keys[:-1]) + " or " + keys[-1]


@contextlib.contextmanager
def explain_out_of_memory(stage: str, advice: str, kept: Callable[[], str] | None = None) -> Iterator[None]:
    """Within the block, RESOURCE_EXHAUSTED raises `OutOfMemory`: '<stage>: <asked and held>; <advice>[; <kept()>]'.
    `kept()` (what is left on disk) is only asked once the block has failed."""
    try:
        yield
    except jax.errors.JaxRuntimeError as error:
        if not is_out_of_memory(error):
            raise
        message = f"out of memory in {stage}: {_asked_and_held(error)}; {advice}"
        raise OutOfMemory(f"{message}; {kept()}" if kept is not None else message) from error
