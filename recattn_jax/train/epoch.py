"""One pass over the training rows: batches (bucketed or not), their loss weights, packed target positions
and the position to resume from."""

from __future__ import annotations

import math

import jax
import numpy as np

from recattn_jax.config import LossConfig, TrainConfig
from recattn_jax.data.batches import step_positions
from recattn_jax.data.bucketing import training_batches
from recattn_jax.losses import PACKED_LOSSES, passes_row_items
from recattn_jax.parallel.mesh import ParallelLayout, batch_placement


def packs_positions(loss_name: str, layout: ParallelLayout | None) -> bool:
    """Whether batches carry their target positions: one device (no layout), a loss that is a mean over
    positions (the mesh's sharded CE keeps the [B, L] layout)."""
    return loss_name in PACKED_LOSSES and layout is None


def epoch_options(loss: LossConfig, layout: ParallelLayout | None) -> dict:
    """run_epoch's `layout`, `pack` and `seen` keywords for a run of `loss` on `layout`, as a training run
    passes them."""
    return {"layout": layout, "pack": packs_positions(loss.name, layout), "seen": passes_row_items(loss)}


def planned_steps(train: TrainConfig, num_rows: int) -> int:
    """The run's steps: `train.epochs` passes over `num_rows` rows, at most `train.max_steps`."""
    total = train.epochs * math.ceil(num_rows / train.batch_size)
    return total if train.max_steps is None else min(total, train.max_steps)


def run_epoch(
    train_step,
    state,
    arrays,
    train: TrainConfig,
    seed: int,
    epoch: int,
    max_steps: int,
    on_step=None,
    start: int = 0,
    *,
    layout: ParallelLayout | None = None,
    pack: bool = False,
    seen: bool = False,
    stop_requested=None,
):
    """One shuffled pass over the rows (at most `max_steps` steps, from batch `start`); returns the state and
    per-step losses.

    `layout`: the run's device layout (None: one device in one process); `pack`: add each batch's target
    positions (`packs_positions`), for a step whose loss scores only those; `seen`: add each row's inputs as its
    seen items (`losses.passes_row_items`: loss.exclude_seen's softmax leaves them out of the negatives, as the
    uniform sampler leaves out the row's items); `stop_requested()`:
    true once the run is to stop (Ctrl-C, SIGTERM), which ends the pass after the step in progress.

    With `train.bucketing`, a batch of short rows has far fewer positions than an average batch, and a
    per-batch mean loss would give each of its positions (so short histories) a larger weight than
    without bucketing. Each bucketed batch's loss is therefore scaled by its positions over the mean
    positions per batch of the epoch: every position weighs as it does, on average, without bucketing."""
    train_key = jax.random.split(jax.random.key(seed))[1]
    losses = []
    # this process's rows of each global batch, sharded over the mesh's `data` axis; identities on one device
    own_rows, place = batch_placement(layout)
    rng = np.random.default_rng([seed, epoch])  # the epoch's order depends on seed and epoch only
    batches = training_batches(arrays, train.batch_size, arrays.max_len, rng, train.bucketing)
    if train.bucketing:  # positions with a target, per row (global: every process computes the same)
        lengths = arrays.lengths
        mean_positions = train.batch_size * float(np.mean(lengths)) if len(lengths) else 1.0
    for i, (idx, length) in enumerate(batches):  # length < max_len: a bucket of short rows, cut to its newest
        if i < start:
            continue  # resuming mid-epoch: these batches were trained on before the interruption
        if len(losses) >= max_steps:
            break
        batch = arrays.batch(own_rows(idx), length)  # reads only this process's rows (and their events)
        if pack:  # score only the positions with a target; a few padded lengths, so a few compiles
            batch["positions"] = step_positions(batch["targets"])
        batch = place(batch)
        if seen:  # the softmax leaves out each row's earlier items (losses.py): the inputs' one device copy
            batch["inputs"] = jax.device_put(batch["inputs"])  # a no-op for arrays `place` put on a mesh
            batch["seen"] = batch["inputs"]
        weight = None
        if train.bucketing:
            weight = np.float32(lengths[idx[idx >= 0]].sum() / mean_positions)
        state, metrics = train_step(state, batch, train_key, weight)
        losses.append(metrics["loss"])
        if on_step is not None:
            on_step(losses)
        if stop_requested is not None and stop_requested():
            break
    return state, losses
