"""The GPU benchmark script imports, parses --help and runs its correctness check on the CPU interpreter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from kernel_cases import needs_interpreter

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_attention.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_attention", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_works():
    with pytest.raises(SystemExit) as exc:
        _load().parse_args(["--help"])
    assert exc.value.code == 0


def test_check_only_with_interpret():
    needs_interpreter()
    assert _load().main(["--backend", "interpret", "--quick", "--check-only"]) == 0
