"""Sharded training, loss, scoring and checkpoints on 8 CPU devices, each in its own subprocess.

`--xla_force_host_platform_device_count=8` only acts before jax is imported, and other test files
import jax in this pytest process, so the checks (tests/parallel/multidevice_checks.py) run in subprocesses.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_checks(*names: str, timeout: int = 900) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parallel.multidevice_checks", *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"checks {names} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ok ")] == list(names)


def test_sharded_ce():
    """Sharded CE == unsharded CE (values, gradients), no all-gather in the HLO: the fast tier's mesh check."""
    run_checks("sharded_ce")


@pytest.mark.slow
def test_mesh_checks():
    """Every other mesh check, in one subprocess on 8 CPU devices."""
    run_checks(
        "sharded_topk",  # per-shard chunked top-K merged == top-K of the full score matrix; ranks too
        "sharded_train_step",  # two steps on a 4 x 2 mesh == two single-device steps
        "own_loss_train_step",  # bert4rec, bpr_mf, din, pop, user/item features, events, recurrent: 4 x 2 == 1
        "sharded_recommend",  # recommend() on a 4 x 2 mesh, whole shards and chunks == top-K of all scores
        "restore_other_mesh",  # checkpoint on 8 devices -> 4 -> 1, and 1 -> 8
        "sharded_training_results",  # train_and_evaluate on a 4 x 2 mesh == the single-device loss and metrics
    )
