"""Top-K recommendations of unseen items from a finished run's best checkpoint.

Items are scored as in evaluation: `eval.item_chunk` rows of the item table at a time (peak memory
[batch, chunk] scores) and, where several devices exist, on a mesh with the run's `mesh.model` item
shards and every other device on `data` (recattn_jax/parallel/topk.py). Models that score candidates
themselves (din, pop: `score_all`) score all items per batch; seen items, padding and mesh-pad rows
are never recommended.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from flax import nnx
from omegaconf import OmegaConf

from recattn_jax.config import Config, MeshConfig, to_config
from recattn_jax.data.batches import left_pad
from recattn_jax.data.load import load_split
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import ConfigError, DataError
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.models import build_model
from recattn_jax.models.scoring import score_all, user_vectors
from recattn_jax.parallel.mesh import ParallelLayout, make_mesh, to_host
from recattn_jax.parallel.topk import full_topk, item_topk
from recattn_jax.train.checkpoint import BestCheckpoint


def recommend_layout(config: Config, num_items: int) -> ParallelLayout | None:
    """The run's `mesh.model` item shards with every other device on `data`; None on one device."""
    mesh = make_mesh(MeshConfig(data=None, model=config.mesh.model))
    return None if mesh.size == 1 and jax.process_count() == 1 else ParallelLayout(mesh, num_items)


def load_run(run_dir: str | Path) -> tuple[Config, LeaveOneOutSplit, nnx.Module]:
    """The config, data and best model of a run directory written by `train_and_evaluate`.

    Where several devices exist, the model's item rows are padded as the run's mesh padded them."""
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise ConfigError(f"run_dir={run_dir}: no config.yaml there; is it the directory of a training run?")
    config = to_config(OmegaConf.load(config_file))
    split = load_split(config.data)
    features, user_features = load_item_features(config, split.data), load_user_features(config, split.data)
    model = build_model(
        config.model,
        split.data.num_items,
        backend=config.kernel.backend,
        rngs=nnx.Rngs(0),
        features=features,
        user_features=user_features,
        num_event_types=split.data.num_event_types,
    )
    layout = recommend_layout(config, split.data.num_items)
    if layout is not None:
        layout.pad_items(model)  # the checkpoint holds the item rows as the run's mesh padded them
    checkpoint = BestCheckpoint(run_dir / "checkpoints")
    try:
        checkpoint.restore_into(model)
    except FileNotFoundError as e:
        raise ConfigError(f"run_dir={run_dir}: {e}") from None
    finally:
        checkpoint.close()
    return config, split, model


def user_indices(split: LeaveOneOutSplit, users: Sequence | None) -> np.ndarray:
    """Indices of the given original user ids (all users when None); unknown ids are an error."""
    if users is None:
        return np.arange(split.data.num_users)
    index = {str(u): i for i, u in enumerate(split.data.user_ids)}
    unknown = [u for u in users if str(u) not in index]
    if unknown:
        raise DataError(f"unknown user id(s) {unknown[:10]} ({len(unknown)} in all) in {split.data.report['source']}")
    return np.asarray([index[str(u)] for u in users], np.int64)


def recommend(
    run_dir: str | Path,
    k: int = 10,
    users: Sequence | None = None,
    batch_size: int = 512,
    item_chunk: int | None = None,
) -> pd.DataFrame:
    """For each user: the k highest-scoring items it has not interacted with, in original ids.

    The model reads each user's whole history (train, valid and test items). `item_chunk`: items
    scored at a time (None: the run's `eval.item_chunk`; 0: all at once). Columns: user, rank
    (1 = best), item, score.
    """
    config, split, model = load_run(run_dir)
    num_items = split.data.num_items
    if not 1 <= k <= num_items:
        raise ConfigError(f"k={k} must lie in 1..{num_items} (the number of items)")
    layout = recommend_layout(config, num_items)
    if layout is not None and batch_size % layout.mesh.shape["data"]:
        raise ConfigError(f"batch_size={batch_size} must be a multiple of the {layout.mesh.shape['data']} data devices")
    rows = user_indices(split, users)
    graphdef, state = nnx.split(model)
    chunked = item_topk(k, config.eval.item_chunk if item_chunk is None else item_chunk, layout)
    place = layout.place_batch if layout is not None else lambda arrays: arrays
    host = to_host if layout is not None else np.asarray
    if layout is not None:
        state = layout.place_state(state)  # item rows sharded over `model`, the rest replicated

    @jax.jit
    def top_k(state, inputs, seen, users, events):
        model = nnx.merge(graphdef, state)
        if chunked is not None and not hasattr(model, "score_all"):
            return chunked(user_vectors(model, inputs, users, events), model.item_table(), seen)
        return full_topk(score_all(model, inputs, users, events), seen, k, num_items)  # seen, padding, pad rows

    histories = split.history(rows, "all")
    history_events = split.history_events(rows, "all")  # None when the data has no event column
    longest = max(len(h) for h in histories)
    frames = []
    for start in range(0, len(rows), batch_size):
        # pad the last batch to the full size so every batch reuses one compiled program
        batch = np.arange(start, start + batch_size) % len(rows)
        n = min(batch_size, len(rows) - start)
        chunk = [histories[i] for i in batch]
        arrays = {
            "inputs": left_pad(chunk, config.model.max_len),
            "seen": left_pad(chunk, longest),
            "users": rows[batch],
        }
        if history_events is not None:
            arrays["events"] = left_pad([history_events[i] for i in batch], config.model.max_len)
        placed = place(arrays)
        outputs = top_k(state, placed["inputs"], placed["seen"], placed["users"], placed.get("events"))
        values, items = (host(a)[:n] for a in outputs)
        frames.append(
            pd.DataFrame(
                {
                    "user": np.repeat(split.data.user_ids[rows[start : start + n]], k),
                    "rank": np.tile(np.arange(1, k + 1), n),
                    "item": split.data.item_ids[items.reshape(-1)],
                    "score": values.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
