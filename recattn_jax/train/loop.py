"""Training and evaluation of a next-item recommender: `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from omegaconf import OmegaConf
from tqdm import tqdm

from recattn_jax.config import Config, to_dict
from recattn_jax.config_checks import check_backend, check_config, check_negatives_fit
from recattn_jax.data.batches import next_item_arrays, sequence_rows
from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.parallel.distributed import initialize as initialize_distributed
from recattn_jax.parallel.distributed import is_primary
from recattn_jax.parallel.mesh import ParallelLayout
from recattn_jax.train.checkpoint import BestCheckpoint, LatestCheckpoint
from recattn_jax.train.divergence import FiniteCheck, check_losses, check_metrics
from recattn_jax.train.epoch import run_epoch
from recattn_jax.train.logs import RunLog, flat_metrics, git_commit
from recattn_jax.train.run_dir import (
    check_same_data,
    check_shared_run_dir,
    data_fingerprint,
    prepare_run_dir,
    with_resolved_paths,
    write_atomic,
)
from recattn_jax.train.run_state import RunPosition, RunStopped
from recattn_jax.train.step import build_training

SELECTION_METRIC = "NDCG@10"


def train_and_evaluate(config: Config, workdir: str | Path) -> dict:
    """Train with early stopping on valid NDCG@10, then report valid and test metrics of the best state.

    Writes `results.json`, `config.yaml`, `metrics.jsonl`, `checkpoints/` (best) and `latest/` (for
    `train.resume=true`) into `workdir` and returns the results. Raises `RunStopped` at
    `train.stop_after_steps`.
    """
    check_config(config)  # every value, before any data is read or any file written
    initialize_distributed(config.distributed)  # multi-process runs: before the first JAX computation
    check_backend(config.kernel.backend)
    config, workdir = with_resolved_paths(config), Path(workdir)
    prepare_run_dir(config, workdir)  # a fresh run never mixes into a used directory; resume needs a run
    check_shared_run_dir(workdir)

    split = load_split(config.data)
    check_negatives_fit(config, split)
    max_len = config.model.max_len
    layout = ParallelLayout.from_config(config, split.data.num_items)
    # several processes: each pads only its own rows of every batch and keeps only its part of the eval users
    rows_of = sequence_rows if jax.process_count() > 1 else next_item_arrays
    arrays = rows_of(split.train_sequences, max_len, split.train_events, whole_history=config.train.whole_history)
    share = layout.share if layout is not None else None
    eval_sets = {name: build_eval_set(split, name, max_len, config.eval, share) for name in ("valid", "test")}

    features, user_features = load_item_features(config, split.data), load_user_features(config, split.data)
    steps_per_epoch = math.ceil(arrays.num_rows / config.train.batch_size)
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    graphdef, state, train_step, model_graphdef = build_training(
        config, split.data.num_items, features, user_features, split.data.num_event_types, total_steps
    )
    evaluator = Evaluator(model_graphdef, config.eval, layout)
    finite_check = FiniteCheck(graphdef, split, max_len, config.train.lr)
    check_same_data(config, workdir, data_fingerprint(split.data.sequences), write=is_primary())
    if is_primary():  # only process 0 writes files, and only once the inputs have been read without error
        OmegaConf.save(OmegaConf.structured(config), workdir / "config.yaml")
    checkpoint = BestCheckpoint(workdir / "checkpoints")
    latest = LatestCheckpoint(workdir / "latest")
    pos, resumed_from = RunPosition(), None
    if config.train.resume and (restored := latest.restore(state)) is not None:
        state, saved = restored
        pos = RunPosition.from_json(saved)
        resumed_from = pos.step
    elif config.train.resume:
        print(f"train.resume=true: no checkpoint in {workdir / 'latest'} yet; starting from step 0", flush=True)
    commit = git_commit()
    # process 0 logs into the run directory, any other process into a subfolder of its own
    log_dir = workdir if is_primary() else workdir / f"process_{jax.process_index()}"
    log = RunLog(log_dir, config, resumed_from=resumed_from, commit=commit)

    def evaluate(state, name):
        model, _ = nnx.merge(graphdef, state)
        return evaluator.evaluate(nnx.state(model), eval_sets[name])

    every, stop_at = config.train.ckpt_every_steps, config.train.stop_after_steps
    if stop_at is not None and stop_at <= pos.step:
        stop_at = None  # a resumed run is already past it
    bar = tqdm(
        total=total_steps,
        initial=pos.step,
        desc="train",
        unit="step",
        disable=not (config.train.progress and is_primary()),
    )
    logged = {"step": pos.step}

    def on_step(losses):  # called after every step of a segment; pos.step is the step the segment began at
        bar.update(1)
        step = pos.step + len(losses)
        if step % config.train.log_every_steps == 0:
            recent = losses[-min(len(losses), step - logged["step"]) :]
            loss = float(np.mean(jax.device_get(recent)))
            log.train(step=step, epoch=pos.epoch, loss=loss, lr=config.train.lr, seconds=pos.train_seconds)
            logged["step"] = step
            bar.set_postfix(loss=f"{loss:.4f}")

    if resumed_from is not None:
        bar.write(f"resumed at step {pos.step} (epoch {pos.epoch}, step {pos.epoch_step} of it) from {workdir}")
    while True:
        if not pos.in_epoch:
            if pos.step >= total_steps or pos.early_stopped:
                break
            pos.epoch, pos.in_epoch, pos.epoch_step, pos.epoch_losses = pos.epoch + 1, True, 0, []
        bar.set_description(f"epoch {pos.epoch}")
        epoch_steps = min(steps_per_epoch, pos.epoch_step + total_steps - pos.step)
        while pos.epoch_step < epoch_steps:  # segments between checkpoints
            if stop_at is not None and pos.step >= stop_at:
                bar.close()
                log.close()
                raise RunStopped(pos.step, workdir, latest.latest_step())
            n = epoch_steps - pos.epoch_step
            if every:
                n = min(n, every - pos.step % every)
            if stop_at is not None:
                n = min(n, stop_at - pos.step)
            started = time.perf_counter()
            state, losses = run_epoch(train_step, state, arrays, config, pos.epoch, n, on_step, start=pos.epoch_step)
            if not losses:
                raise RuntimeError(f"epoch {pos.epoch} has no batch after step {pos.epoch_step}")
            losses = [float(x) for x in jax.device_get(losses)]
            check_losses(losses, pos.step, pos.epoch, config.train.lr)  # on the host already: no extra sync
            pos.epoch_losses += losses
            pos.train_seconds += time.perf_counter() - started
            pos.step += len(losses)
            pos.epoch_step += len(losses)
            if every and pos.step % every == 0:
                finite_check(state, pos.step, pos.epoch)
                latest.save(pos.step, state, pos.to_json())
        if stop_at is not None and pos.step >= stop_at and pos.step < total_steps:
            bar.close()
            log.close()
            raise RunStopped(pos.step, workdir, latest.latest_step())
        pos.in_epoch = False
        epoch, step = pos.epoch, pos.step
        epoch_loss = float(np.mean(np.asarray(pos.epoch_losses, np.float32)))
        if epoch % config.train.eval_every == 0 or step >= total_steps:
            finite_check(state, step, epoch)  # a NaN model's metrics read 1.0
            eval_started = time.perf_counter()
            valid = evaluate(state, "valid")
            eval_seconds = time.perf_counter() - eval_started
            check_metrics(valid, "valid", step, epoch, config.train.lr)
            score = valid["full"][SELECTION_METRIC]
            pos.history.append(
                {"epoch": epoch, "step": step, "loss": epoch_loss, "valid_full_" + SELECTION_METRIC: score}
            )
            log.eval(
                step=step,
                epoch=epoch,
                loss=epoch_loss,
                seconds=pos.train_seconds,
                valid=valid,
                eval_seconds=eval_seconds,
            )
            bar.write(f"epoch {epoch}: loss {epoch_loss:.4f}  valid full {SELECTION_METRIC} {score:.4f}")
            if score > pos.best_or_minus_inf():
                pos.best, pos.bad_evals = score, 0
                checkpoint.save(step, nnx.merge(graphdef, state)[0], score)
            else:
                pos.bad_evals += 1
                if config.train.patience and pos.bad_evals >= config.train.patience:
                    bar.write(f"early stop: no better valid {SELECTION_METRIC} in {pos.bad_evals} evaluations")
                    pos.early_stopped = True
    bar.close()
    latest.close()

    model, _ = nnx.merge(graphdef, state)
    best_step = checkpoint.restore_into(model)
    checkpoint.close()
    model_state = nnx.state(model)
    train_loss = float(np.mean(np.asarray(pos.epoch_losses, np.float32))) if pos.epoch_losses else float("nan")
    results = {
        "valid": evaluator.evaluate(model_state, eval_sets["valid"]),
        "test": evaluator.evaluate(model_state, eval_sets["test"]),
        "train_loss": train_loss,
        "epochs": pos.epoch,
        "steps": pos.step,
        "best_step": best_step,
        "train_seconds": pos.train_seconds,
        "seconds_per_epoch": pos.train_seconds / max(pos.epoch, 1),
        "history": pos.history,
        "git_commit": commit,
        "resumed_from": resumed_from,
        "data": split.data.report,
        "config": to_dict(config),
    }
    log.write({"kind": "end", "step": pos.step, "best_step": best_step, **flat_metrics("test", results["test"])})
    log.close()
    if is_primary():
        write_atomic(workdir / "results.json", json.dumps(results, indent=2, default=str))
    return results


def format_metrics(results: dict) -> str:
    """A plain-text table: one row per split and protocol, one column per metric."""
    rows = [
        (f"{split}/{protocol}", metrics) for split in ("valid", "test") for protocol, metrics in results[split].items()
    ]
    names = list(rows[0][1])
    lines = [f"{'':<16}" + "".join(f"{n:>9}" for n in names)]
    lines += [f"{label:<16}" + "".join(f"{m[n]:>9.4f}" for n in names) for label, m in rows]
    return "\n".join(lines)
