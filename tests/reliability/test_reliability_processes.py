"""Several processes must share one run directory: if they do not, every one stops with one line (no hang)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("reliability_dir_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes start JAX (about 15 s on 2 busy cores)
def test_processes_with_different_run_directories_stop_with_one_line(tmp_path):
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one device per process
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(port), str(i), str(tmp_path / f"machine_{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 2, f"process {i}: {err[-3000:]}"
        assert err.strip().splitlines()[-1] == (
            f"error: hydra.run.dir={tmp_path / f'machine_{i}'} is not the same directory for every process: "
            "process(es) [1] do not see the file process 0 wrote there; put the run directory on a filesystem all "
            "processes share"
        )
        assert "Traceback" not in err
    assert not any((tmp_path / "machine_0").glob("checkpoints/*"))
