"""One of two processes started on loopback with a run directory of its own (as on two machines without a
shared filesystem): `python tests/reliability/reliability_dir_worker.py PORT ID DIR`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tiny_configs import TINY  # noqa: E402

from recattn_jax.cli import run_entry  # noqa: E402
from recattn_jax.config import to_config  # noqa: E402
from recattn_jax.train.loop import train_and_evaluate  # noqa: E402

if __name__ == "__main__":
    port, process_id, workdir = sys.argv[1:4]
    config = to_config(TINY)
    config.kernel.backend = "reference"
    config.eval.sampled = False
    config.distributed.coordinator = f"127.0.0.1:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    run_entry(lambda: train_and_evaluate(config, Path(workdir)))
