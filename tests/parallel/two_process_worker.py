"""One of two processes training together on loopback: `python -m tests.parallel.two_process_worker PORT ID DIR`.

Each process has one CPU device; the default mesh puts both on `data`. Writes DIR/process_ID.json,
with the rows this process read of each training batch and its eval users (its share of the data).
"""

import json
import sys
from pathlib import Path

from recattn_jax.config import to_config
from recattn_jax.data.batches import SequenceRows
from recattn_jax.train import loop, run_setup
from tests.tiny_configs import TINY


def main(port: str, process_id: str, out: str) -> None:
    config = to_config(TINY)
    config.kernel.backend = "reference"
    config.eval.sampled = False
    config.distributed.coordinator = f"127.0.0.1:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    batch_rows, eval_users = [], {}
    read_rows, build_eval_set = SequenceRows.batch, run_setup.build_eval_set

    def recording_batch(self, idx, length):  # the rows this process pads and places of each global batch
        batch_rows.append(len(idx))
        return read_rows(self, idx, length)

    def recording_eval_set(split, name, *args):
        eval_set = build_eval_set(split, name, *args)
        eval_users[name] = [len(eval_set.users), len(split.eval_users)]
        return eval_set

    SequenceRows.batch, run_setup.build_eval_set = recording_batch, recording_eval_set
    results = loop.train_and_evaluate(config, Path(out) / "run")
    import jax

    report = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": len(jax.devices()),
        "train_loss": results["train_loss"],
        "test": results["test"],
        "batch_rows": batch_rows,
        "eval_users": eval_users,
    }
    (Path(out) / f"process_{process_id}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
