"""Fixtures and settings shared by every test folder.

Hypothesis profiles: tests/hypothesis_profiles.py (HYPOTHESIS_PROFILE=ci, the default, or thorough).

Most of a tiny test's time is XLA compiling it, so the session
- caches compiled programs on disk in one directory shared by the pytest-xdist workers and every
  subprocess a test starts (the CLI, sweeps): tests build the same tiny step in many places, and each
  new closure or process would otherwise compile it again;
- compiles CPU code without LLVM's optimisation passes (`--xla_backend_optimization_level=0`):
  a third less compile time for the same programs, which run for milliseconds here. Production runs
  and `benchmarks/` keep XLA's defaults.
These are environment variables, set before JAX starts its backend, so subprocesses inherit them.
"""

import os
import shutil
import tempfile

_OWN_CACHE = "RECATTN_TEST_JAX_CACHE" not in os.environ  # the first process to load this file (the xdist controller)
if _OWN_CACHE:
    os.environ["RECATTN_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="recattn-jax-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["RECATTN_TEST_JAX_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.3"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import hypothesis_profiles  # noqa: E402,F401  (registers and loads the profile)
import jax  # noqa: E402
import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402
from tiny_configs import TINY, tiny_overrides  # noqa: E402

from recattn_jax.config import Config, to_config  # noqa: E402
from recattn_jax.data.load import PROJECT_ROOT  # noqa: E402

# the environment above configures subprocesses; this process may have imported jax before reading it
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"])
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes", int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"])
)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop("RECATTN_TEST_JAX_CACHE"), ignore_errors=True)


@pytest.fixture
def tiny_config() -> Config:
    return to_config(TINY)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny run, trained once per test session as a user would (`python -m experiments.train`), shared
    by the CLI, metrics.jsonl and reliability tests, and by the xdist workers (the first one trains it,
    under a file lock). Read-only: a test that damages a run copies it first. 2 steps, every step
    logged, `latest/` checkpoints at steps 1 and 2, the best state at step 2. Its stdout is
    `trained_run.stdout` beside it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's root, above the workers' own directories
    run_dir = shared / "trained_run"
    with FileLock(shared / "trained_run.lock"):
        if not (run_dir / "results.json").exists():
            args = [
                *tiny_overrides(),
                "train.ckpt_every_steps=1",
                "train.log_every_steps=1",
                f"hydra.run.dir={run_dir}",
            ]
            proc = subprocess.run(
                [sys.executable, "-m", "experiments.train", *args],
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            (shared / "trained_run.stdout").write_text(proc.stdout)
    return run_dir
