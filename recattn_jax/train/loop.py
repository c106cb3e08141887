"""Training and evaluation of a next-item recommender: `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx
from omegaconf import OmegaConf
from tqdm import tqdm

from recattn_jax.config import Config, TrainConfig, to_dict
from recattn_jax.data.batches import epoch_batches, next_item_arrays, take_rows
from recattn_jax.data.load import load_split
from recattn_jax.errors import ConfigError
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.models import build_model
from recattn_jax.train.checkpoint import BestCheckpoint
from recattn_jax.train.losses import next_item_loss

SELECTION_METRIC = "NDCG@10"


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return optax.adam(config.lr, b1=config.beta1, b2=config.beta2)
    if config.optimizer == "adamw":
        return optax.adamw(config.lr, b1=config.beta1, b2=config.beta2, weight_decay=config.weight_decay)
    raise ConfigError(f"train.optimizer={config.optimizer!r}; choose one of ['adam', 'adamw']")


def make_train_step(graphdef: nnx.GraphDef, loss_fn):
    """A pure, jitted step over the (model, optimizer) state; the old state's buffers are donated."""

    @partial(jax.jit, donate_argnums=0)
    def train_step(state, batch, rng):
        model, optimizer = nnx.merge(graphdef, state)
        rng = jax.random.fold_in(rng, optimizer.step[...])  # a fresh, reproducible key per step
        dropout_rng, loss_rng = jax.random.split(rng)

        def loss_of(model):
            if hasattr(model, "train_loss"):  # a model with its own objective (masked items, pairs, ...)
                return model.train_loss(batch, loss_fn, loss_rng, nnx.Rngs(dropout=dropout_rng))
            hidden = model.encode(batch["inputs"], rngs=nnx.Rngs(dropout=dropout_rng))
            return loss_fn(hidden, model.item_table(), batch["targets"], loss_rng)

        loss, grads = nnx.value_and_grad(loss_of)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), {"loss": loss}

    return train_step


def build_training(config: Config, num_items: int, features=None, user_features=None):
    """Model, optimizer and jitted step for `config`: returns (graphdef, state, train_step, model graphdef).

    `features` / `user_features`: side features of items / users (recattn_jax.features)."""
    init_key = jax.random.split(jax.random.key(config.seed))[0]
    model = build_model(
        config.model,
        num_items,
        backend=config.kernel.backend,
        rngs=nnx.Rngs(init_key),
        features=features,
        user_features=user_features,
    )
    optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    loss_fn = next_item_loss(
        config.loss.name,
        config.loss.num_negatives,
        gbce_t=config.loss.gbce_t,
        logq_correction=config.loss.logq_correction,
    )
    train_step = make_train_step(graphdef, loss_fn)
    return graphdef, state, train_step, nnx.graphdef(model)


def run_epoch(train_step, state, arrays, config: Config, epoch: int, max_steps: int, on_step=None):
    """One shuffled pass over the rows (at most `max_steps` steps); returns the state and per-step losses."""
    train_key = jax.random.split(jax.random.key(config.seed))[1]
    losses = []
    rng = np.random.default_rng([config.seed, epoch])  # the epoch's order depends on seed and epoch only
    for idx in epoch_batches(arrays.num_rows, config.train.batch_size, rng):
        if len(losses) >= max_steps:
            break
        batch = {"inputs": take_rows(arrays.inputs, idx), "targets": take_rows(arrays.targets, idx)}
        batch["users"] = np.where(idx < 0, -1, arrays.users[np.maximum(idx, 0)])  # -1: a padding row
        state, metrics = train_step(state, batch, train_key)
        losses.append(metrics["loss"])
        if on_step is not None:
            on_step(losses)
    return state, losses


def _check_config(config: Config) -> None:
    for key, value in (
        ("train.epochs", config.train.epochs),
        ("train.batch_size", config.train.batch_size),
        ("train.eval_every", config.train.eval_every),
        ("model.max_len", config.model.max_len),
        ("eval.batch_size", config.eval.batch_size),
    ):
        if value < 1:
            raise ConfigError(f"{key}={value} must be at least 1")


def train_and_evaluate(config: Config, workdir: str | Path) -> dict:
    """Train with early stopping on valid NDCG@10, then report valid and test metrics of the best state.

    Writes `results.json`, `config.yaml` and `checkpoints/` into `workdir` and returns the results.
    """
    _check_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.structured(config), workdir / "config.yaml")

    split = load_split(config.data)
    max_len = config.model.max_len
    arrays = next_item_arrays(split.train_sequences, max_len)
    eval_sets = {name: build_eval_set(split, name, max_len, config.eval) for name in ("valid", "test")}

    features, user_features = load_item_features(config, split.data), load_user_features(config, split.data)
    graphdef, state, train_step, model_graphdef = build_training(config, split.data.num_items, features, user_features)
    evaluator = Evaluator(model_graphdef, config.eval)
    checkpoint = BestCheckpoint(workdir / "checkpoints")

    def evaluate(state, name):
        model, _ = nnx.merge(graphdef, state)
        return evaluator.evaluate(nnx.state(model), eval_sets[name])

    steps_per_epoch = math.ceil(arrays.num_rows / config.train.batch_size)
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    best, bad_evals, step, epoch, train_seconds, history = -math.inf, 0, 0, 0, 0.0, []
    epoch_loss = float("nan")
    bar = tqdm(total=total_steps, desc="train", unit="step", disable=not config.train.progress)

    def on_step(losses):
        bar.update(1)
        if len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{float(losses[-1]):.4f}")

    while step < total_steps:
        epoch += 1
        bar.set_description(f"epoch {epoch}")
        started = time.perf_counter()
        state, losses = run_epoch(train_step, state, arrays, config, epoch, total_steps - step, on_step)
        step += len(losses)
        epoch_loss = float(np.mean(jax.device_get(losses)))
        train_seconds += time.perf_counter() - started
        if not math.isfinite(epoch_loss):
            bar.close()
            raise FloatingPointError(
                f"training diverged in epoch {epoch} (mean loss {epoch_loss}); "
                f"the best checkpoint so far is kept in {workdir / 'checkpoints'}"
            )
        if epoch % config.train.eval_every == 0 or step >= total_steps:
            valid = evaluate(state, "valid")
            score = valid["full"][SELECTION_METRIC]
            history.append({"epoch": epoch, "step": step, "loss": epoch_loss, "valid_full_" + SELECTION_METRIC: score})
            bar.write(f"epoch {epoch}: loss {epoch_loss:.4f}  valid full {SELECTION_METRIC} {score:.4f}")
            if score > best:
                best, bad_evals = score, 0
                checkpoint.save(step, nnx.merge(graphdef, state)[0], score)
            else:
                bad_evals += 1
                if config.train.patience and bad_evals >= config.train.patience:
                    bar.write(f"early stop: no better valid {SELECTION_METRIC} in {bad_evals} evaluations")
                    break
    bar.close()

    model, _ = nnx.merge(graphdef, state)
    best_step = checkpoint.restore_into(model)
    checkpoint.close()
    model_state = nnx.state(model)
    results = {
        "valid": evaluator.evaluate(model_state, eval_sets["valid"]),
        "test": evaluator.evaluate(model_state, eval_sets["test"]),
        "train_loss": epoch_loss,
        "epochs": epoch,
        "steps": step,
        "best_step": best_step,
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(epoch, 1),
        "history": history,
        "data": split.data.report,
        "config": to_dict(config),
    }
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
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
