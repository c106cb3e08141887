"""Model selection: validate at an epoch's end, keep the best state (valid full-ranking NDCG@10) as the best
checkpoint, and stop early after `train.patience` evaluations without a better one."""

from __future__ import annotations

import time

import numpy as np
from flax import nnx
from tqdm import tqdm

from recattn_jax.config import SELECTION_METRIC
from recattn_jax.train.checkpoint import BestCheckpoint
from recattn_jax.train.divergence import check_metrics
from recattn_jax.train.logs import RunLog
from recattn_jax.train.run_setup import RunSetup
from recattn_jax.train.run_state import RunPosition


class Selection:
    def __init__(self, run: RunSetup, best: BestCheckpoint, log: RunLog):
        self.run, self.best, self.log = run, best, log
        self.lr, self.patience = run.config.train.lr, run.config.train.patience

    def validate(self, state: nnx.State, pos: RunPosition) -> None:
        """Evaluate `state` on the valid set, log it, save it if it is the best so far; may set
        `pos.early_stopped`."""
        epoch, step = pos.epoch, pos.step
        epoch_loss = float(np.mean(np.asarray(pos.epoch_losses, np.float32)))
        self.run.finite_check(state, step, epoch)  # a NaN model's metrics read 1.0
        started = time.perf_counter()
        model = self.run.model(state)
        valid = self.run.evaluate(model, "valid")
        eval_seconds = time.perf_counter() - started
        check_metrics(valid, "valid", step, epoch, self.lr)
        trained = None
        if self.run.config.train.ema_decay:  # the average is selected on; the trained weights logged beside it
            trained = self.run.evaluate(self.run.trained_model(state), "valid")
            check_metrics(trained, "valid (trained weights)", step, epoch, self.lr)
        score = valid["full"][SELECTION_METRIC]
        pos.history.append({"epoch": epoch, "step": step, "loss": epoch_loss, "valid_full_" + SELECTION_METRIC: score})
        self.log.eval(
            step=step,
            epoch=epoch,
            loss=epoch_loss,
            seconds=pos.train_seconds,
            valid=valid,
            eval_seconds=eval_seconds,
            valid_trained=trained,
        )
        tqdm.write(f"epoch {epoch}: loss {epoch_loss:.4f}  valid full {SELECTION_METRIC} {score:.4f}")
        if score > pos.best_or_minus_inf():
            pos.best, pos.bad_evals = score, 0
            self.best.save(step, model, score)
        else:
            pos.bad_evals += 1
            if self.patience and pos.bad_evals >= self.patience:
                tqdm.write(f"early stop: no better valid {SELECTION_METRIC} in {pos.bad_evals} evaluations")
                pos.early_stopped = True
