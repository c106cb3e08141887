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


def test_gpu_check_dry_run_skips_gpu_steps_cleanly(tmp_path):
    import os
    import subprocess
    import sys

    import jax

    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present: the dry run is for CPU machines")
    script = SCRIPT.parent / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipping the GPU tests and benchmarks: " in out.stdout
    assert "jax backend: cpu" in (tmp_path / "out" / "env.txt").read_text()
    assert "GPU steps skipped" in (tmp_path / "out" / "results.md").read_text()
    assert not list((tmp_path / "out").glob("*.csv"))


def test_markdown_table_moves_constant_columns_above(tmp_path):
    from benchmarks.markdown_table import markdown

    csv_path = tmp_path / "bench_x.csv"
    csv_path.write_text("gpu,impl,us\nH200,triton,10.5\nH200,xla_dpa,20.0\n")
    text = markdown([csv_path])
    assert "- gpu: H200" in text
    assert "| impl | us |" in text and "| triton | 10.5 |" in text and "| xla_dpa | 20.0 |" in text


LCE_SCRIPT = SCRIPT.parent / "bench_linear_ce.py"


def _load_lce():
    spec = importlib.util.spec_from_file_location("bench_linear_ce", LCE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linear_ce_check_with_interpret():
    needs_interpreter()
    assert _load_lce().main(["--backend", "interpret", "--check-only"]) == 0


def test_linear_ce_timings_write_csv(tmp_path):
    """A tiny CPU run: every impl and mode gets a time and XLA's temp memory; the CSV carries the stamp."""
    import csv

    out = tmp_path / "lce.csv"
    assert _load_lce().main(["--out", str(out), "--sizes", "256,16,2000", "--chunks", "32", "--repeats", "2"]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))  # no file left open (ResourceWarning)
    assert {(r["impl"], r["mode"]) for r in rows} == {
        (impl, mode) for impl in ("xla", "reference_32") for mode in ("fwd", "fwd+bwd")
    }
    assert all(float(r["ms"]) > 0 and float(r["temp_mib"]) >= 0 and r["commit"] and r["jax"] for r in rows)
    xla, ours = (next(r for r in rows if r["impl"] == i and r["mode"] == "fwd+bwd") for i in ("xla", "reference_32"))
    assert float(ours["temp_mib"]) < float(xla["temp_mib"])  # [256, 32] chunks, not [256, 2000] logits (2 MiB)
