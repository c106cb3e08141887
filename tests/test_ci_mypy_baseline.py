""".ci/mypy_baseline.py fails unless mypy itself reported: a missing mypy is not a clean tree."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "mypy_baseline.py"


@pytest.fixture
def baseline():
    spec = importlib.util.spec_from_file_location("mypy_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_mypy(monkeypatch, module, returncode, stdout="", stderr=""):
    def run(*args, **kwargs):
        return subprocess.CompletedProcess(args, returncode, stdout, stderr)

    monkeypatch.setattr(module.subprocess, "run", run)


def test_exit_1_without_error_lines_is_a_failure(monkeypatch, baseline):
    # what `python -m mypy` gives when mypy is not installed: exit 1, nothing on stdout
    fake_mypy(monkeypatch, baseline, 1, stderr="/usr/bin/python: No module named mypy\n")
    with pytest.raises(SystemExit, match="No module named mypy"):
        baseline.current_errors()


def test_mypy_errors_are_parsed_without_line_numbers(monkeypatch, baseline):
    out = "pkg/a.py:12: error: Bad thing  [misc]\npkg/b.py:3:7: error: Other  [arg-type]\npkg/a.py:9: note: hint\n"
    fake_mypy(monkeypatch, baseline, 1, stdout=out)
    assert baseline.current_errors() == ["pkg/a.py: error: Bad thing  [misc]", "pkg/b.py: error: Other  [arg-type]"]


def test_a_clean_run_and_a_crash(monkeypatch, baseline):
    fake_mypy(monkeypatch, baseline, 0)
    assert baseline.current_errors() == []
    fake_mypy(monkeypatch, baseline, 2, stderr="config error")
    with pytest.raises(SystemExit, match="exit 2"):
        baseline.current_errors()
