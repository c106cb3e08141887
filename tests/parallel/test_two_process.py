"""Two processes on loopback (127.0.0.1, one CPU device each) train together to the single-process loss,
each reading only its half of every batch and of the eval users."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recattn_jax.config import to_config
from recattn_jax.train.loop import train_and_evaluate
from tests.tiny_configs import TINY

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one device per process
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.parallel.two_process_worker", str(port), str(i), str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{logs[i][-6000:]}"
    reports = [json.loads((tmp_path / f"process_{i}.json").read_text()) for i in range(2)]
    assert [r["process_index"] for r in reports] == [0, 1]
    assert all(r["process_count"] == 2 and r["devices"] == 2 for r in reports)
    for r in reports:  # each process read only its half of every training batch and of the eval users
        assert r["batch_rows"] == [TINY["train"]["batch_size"] // 2] * TINY["train"]["max_steps"], r["batch_rows"]
        for name, (local, total) in r["eval_users"].items():
            assert local == -(-total // 2) if r["process_index"] == 0 else local == total // 2, (name, local, total)

    config = to_config(TINY)
    config.kernel.backend = "reference"
    config.eval.sampled = False
    single = train_and_evaluate(config, tmp_path / "single")
    for r in reports:
        np.testing.assert_allclose(r["train_loss"], single["train_loss"], rtol=1e-5)
        for name, value in single["test"]["full"].items():
            np.testing.assert_allclose(r["test"]["full"][name], value, atol=1e-6, err_msg=name)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())  # written by process 0 only
    np.testing.assert_allclose(saved["train_loss"], single["train_loss"], rtol=1e-5)
