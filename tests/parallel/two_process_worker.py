"""One of two processes training together on loopback: `python -m tests.parallel.two_process_worker PORT ID DIR`.

Each process has one CPU device; the default mesh puts both on `data`. Writes DIR/process_ID.json.
"""

import json
import sys
from pathlib import Path

from recattn_jax.config import to_config
from recattn_jax.train.loop import train_and_evaluate
from tests.tiny_configs import TINY


def main(port: str, process_id: str, out: str) -> None:
    config = to_config(TINY)
    config.kernel.backend = "reference"
    config.eval.sampled = False
    config.distributed.coordinator = f"127.0.0.1:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    results = train_and_evaluate(config, Path(out) / "run")
    import jax

    report = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": len(jax.devices()),
        "train_loss": results["train_loss"],
        "test": results["test"],
    }
    (Path(out) / f"process_{process_id}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
