"""Top-K recommendations of unseen items from a finished run's best checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx
from omegaconf import OmegaConf

from recattn_jax.config import Config, to_config
from recattn_jax.data.batches import left_pad
from recattn_jax.data.load import load_split
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import ConfigError, DataError
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.models import build_model
from recattn_jax.models.scoring import score_all
from recattn_jax.train.checkpoint import BestCheckpoint


def load_run(run_dir: str | Path) -> tuple[Config, LeaveOneOutSplit, nnx.Module]:
    """The config, data and best model of a run directory written by `train_and_evaluate`."""
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


def recommend(run_dir: str | Path, k: int = 10, users: Sequence | None = None, batch_size: int = 512) -> pd.DataFrame:
    """For each user: the k highest-scoring items it has not interacted with, in original ids.

    The model reads each user's whole history (train, valid and test items). Columns: user, rank
    (1 = best), item, score.
    """
    config, split, model = load_run(run_dir)
    if not 1 <= k <= split.data.num_items:
        raise ConfigError(f"k={k} must lie in 1..{split.data.num_items} (the number of items)")
    rows = user_indices(split, users)
    graphdef, state = nnx.split(model)

    @jax.jit
    def top_k(state, inputs, seen, users, events):
        scores = score_all(nnx.merge(graphdef, state), inputs, users, events)
        batch = jnp.arange(scores.shape[0])[:, None]
        scores = scores.at[batch, seen].set(-jnp.inf).at[:, 0].set(-jnp.inf)  # seen items and padding
        return jax.lax.top_k(scores, k)

    histories = split.history(rows, "all")
    history_events = split.history_events(rows, "all")  # None when the data has no event column
    longest = max(len(h) for h in histories)
    frames = []
    for start in range(0, len(rows), batch_size):
        chunk = histories[start : start + batch_size]
        seen = left_pad(chunk, longest)
        inputs = left_pad(chunk, config.model.max_len)
        events = (
            None if history_events is None else left_pad(history_events[start : start + batch_size], inputs.shape[1])
        )
        values, items = jax.device_get(top_k(state, inputs, seen, rows[start : start + batch_size], events))
        frames.append(
            pd.DataFrame(
                {
                    "user": np.repeat(split.data.user_ids[rows[start : start + batch_size]], k),
                    "rank": np.tile(np.arange(1, k + 1), len(chunk)),
                    "item": split.data.item_ids[items.reshape(-1)],
                    "score": values.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
