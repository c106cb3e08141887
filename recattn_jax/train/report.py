"""The end of a run: the best state's valid and test metrics with how the run went (`results.json`), and
the same metrics as a plain-text table."""

from __future__ import annotations

import json

import numpy as np
from flax import nnx

from recattn_jax.config import to_dict
from recattn_jax.parallel.distributed import is_primary
from recattn_jax.train.checkpoint import BestCheckpoint
from recattn_jax.train.run_dir import write_atomic
from recattn_jax.train.run_setup import RunSetup
from recattn_jax.train.run_state import RunPosition

RESULTS_FILE = "results.json"


def final_results(
    run: RunSetup, state: nnx.State, pos: RunPosition, best: BestCheckpoint, *, commit: str, resumed_from: int | None
) -> dict:
    """The valid and test metrics of the best checkpoint's weights (loaded into the model of `state`)."""
    model = run.model(state)
    best_step = best.restore_into(model)
    train_loss = float(np.mean(np.asarray(pos.epoch_losses, np.float32))) if pos.epoch_losses else float("nan")
    return {
        "valid": run.evaluate(model, "valid"),
        "test": run.evaluate(model, "test"),
        "train_loss": train_loss,
        "epochs": pos.epoch,
        "steps": pos.step,
        "best_step": best_step,
        "train_seconds": pos.train_seconds,
        "seconds_per_epoch": pos.train_seconds / max(pos.epoch, 1),
        "history": pos.history,
        "git_commit": commit,
        "resumed_from": resumed_from,
        "data": run.split.data.report,
        "config": to_dict(run.config),
    }


def write_results(run: RunSetup, results: dict) -> None:
    if is_primary():  # only process 0 writes files
        write_atomic(run.workdir / RESULTS_FILE, json.dumps(results, indent=2, default=str))


def format_metrics(results: dict) -> str:
    """A plain-text table: one row per split and protocol, one column per metric."""
    rows = [
        (f"{split}/{protocol}", metrics) for split in ("valid", "test") for protocol, metrics in results[split].items()
    ]
    names = list(rows[0][1])
    lines = [f"{'':<16}" + "".join(f"{n:>9}" for n in names)]
    lines += [f"{label:<16}" + "".join(f"{m[n]:>9.4f}" for n in names) for label, m in rows]
    return "\n".join(lines)
