"""One tiny finished run shared by the reliability tests, and the entry points run in-process."""

import runpy
import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def finished_run(trained_run):
    """The session's tiny 2-step run (tests/conftest.py): `latest/` checkpoints at steps 1 and 2, the best at 2."""
    return trained_run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished run, free to damage."""
    return shutil.copytree(finished_run, tmp_path / "copy")


@pytest.fixture
def cli(monkeypatch, capsys):
    """cli("experiments.train", *overrides) runs an entry point in-process as `python -m` would:
    (exit code, stdout, stderr)."""

    def run(module, *overrides):
        quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"] if module == "experiments.train" else []
        monkeypatch.setattr(sys, "argv", [module, *overrides, *quiet])
        code = 0
        try:
            runpy.run_module(module, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
