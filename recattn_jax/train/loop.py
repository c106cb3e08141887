"""Training and evaluation of a next-item recommender: `train_and_evaluate(config, workdir)`.

The stages, each in its own module: `run_setup` (checks, data, device layout, model), `run_state` (resume),
`schedule` (epochs of segments between checkpoints), `selection` (validation, best checkpoint, early
stopping) and `report` (the final metrics).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from recattn_jax.config import Config
from recattn_jax.train.checkpoint import BestCheckpoint, LatestCheckpoint
from recattn_jax.train.logs import RunLog, git_commit
from recattn_jax.train.report import final_results, write_results
from recattn_jax.train.run_setup import prepare_run
from recattn_jax.train.run_state import resume
from recattn_jax.train.schedule import Schedule, StepProgress, train_epochs
from recattn_jax.train.selection import Selection
from recattn_jax.train.stop_requests import StopRequests


def train_and_evaluate(config: Config, workdir: str | Path) -> dict:
    """Train with early stopping on valid NDCG@10, then report valid and test metrics of the best state.

    Writes `results.json`, `config.yaml`, `metrics.jsonl`, `checkpoints/` (best) and `latest/` (for
    `train.resume=true`) into `workdir` and returns the results. Raises `RunStopped` at
    `train.stop_after_steps`.
    """
    run, state = prepare_run(config, workdir)  # nothing is written before every input is read and checked
    train = run.config.train
    with contextlib.ExitStack() as stack:  # the checkpoints, the log and the bar close however the run ends
        best = stack.enter_context(BestCheckpoint(run.workdir / "checkpoints"))
        latest = stack.enter_context(LatestCheckpoint(run.workdir / "latest"))
        state, pos, resumed_from = resume(train, latest, state, run.workdir)
        commit = git_commit()
        log = stack.enter_context(
            RunLog(run.log_dir, run.config, resumed_from=resumed_from, evaluated=not pos.in_epoch, commit=commit)
        )
        schedule = Schedule.of(train, run.arrays.num_rows, pos.step)
        progress = stack.enter_context(StepProgress(train, log, schedule.total_steps, pos))
        with StopRequests() as stops:  # Ctrl-C / SIGTERM: the latest state is saved at the step they end
            state = train_epochs(
                run, state, pos, schedule, latest, progress, validate=Selection(run, best, log).validate, stops=stops
            )
        progress.close()  # the bar ends before the final evaluation
        results = final_results(run, state, pos, best, commit=commit, resumed_from=resumed_from)
        log.end(results)
    write_results(run, results)
    return results
