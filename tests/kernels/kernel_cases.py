"""Shared cases for the kernel tests: padding patterns, key bounds and the error metric.

Error metric everywhere: max|got - want| / max(max|want|, 1), in fp32: the max-abs error relative to
the largest reference magnitude (inputs are N(0,1), so outputs and gradients are O(1)). The floor of 1
is for gradients that cancel to ~0 (dq with one visible key is exactly 0 in exact arithmetic, while
its terms are O(|do.v|)): there the tolerance applies to the absolute rounding noise.
"""

from __future__ import annotations

import numpy as np
import pytest

PADDINGS = ("none", "left", "right", "both", "empty_row")


def bounds(rng: np.random.Generator, b: int, s: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """kv_start, kv_end [B] for a padding pattern; `empty_row` makes row 0 fully padded."""
    start = np.zeros(b, np.int32)
    end = np.full(b, s, np.int32)
    if padding in ("left", "both", "empty_row"):
        start = rng.integers(0, s, b).astype(np.int32)
    if padding in ("right", "both", "empty_row"):
        end = np.maximum(start + 1, rng.integers(1, s + 1, b)).astype(np.int32)
        end = np.minimum(end, s)
    if padding == "empty_row":
        start[0], end[0] = s // 2, s // 2
    return start, end


def rel_err(got, want) -> float:
    got = np.asarray(got, np.float32)
    want = np.asarray(want, np.float32)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1.0)) if want.size else 0.0


def needs_interpreter():
    pytest.importorskip("triton", reason="backend 'interpret' needs triton (pip install -e '.[test]')")
    pytest.importorskip("torch", reason="Triton's interpreter needs torch tensors (pip install -e '.[test]')")
