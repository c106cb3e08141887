"""Top-K recommendations of unseen items from a finished run's best checkpoint.

Items are scored as in evaluation: `eval.item_chunk` rows of the item table at a time (peak memory
[batch, chunk] scores) and, where several devices exist, on a mesh with the run's `mesh.model` item
shards and every other device on `data` (recattn_jax/parallel/topk.py). Models that score candidates
themselves (din, pop: `score_all`) score all items per batch; seen items, padding and mesh-pad rows
are never recommended, nor an item twice: the device's top-K is filtered again on the host, and a user
with fewer than k unseen items gets fewer rows (with a warning). A model with non-finite weights is
refused (NaN scores rank first, and would bury nothing but the truth).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from flax import nnx
from omegaconf import OmegaConf

from recattn_jax.config import Config, MeshConfig, to_config
from recattn_jax.config_checks import check_backend
from recattn_jax.data.batches import left_pad
from recattn_jax.data.load import load_split
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import CheckpointError, ConfigError, DataError, cut
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.models import build_model
from recattn_jax.models.interface import model_kind
from recattn_jax.models.scoring import score_all, user_vectors
from recattn_jax.parallel.mesh import ParallelLayout, make_mesh, to_host
from recattn_jax.parallel.topk import full_topk, item_topk
from recattn_jax.train.checkpoint import BestCheckpoint
from recattn_jax.train.run_dir import DATA_FILE, data_fingerprint, saved_fingerprint


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
    try:
        config = to_config(OmegaConf.load(config_file))
    except Exception as e:  # a cut or hand-edited file: yaml, unknown key or type errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{config_file}: cannot be read as a run's config ({reason[:200]})") from e
    backend = config.kernel.backend
    try:
        check_backend(backend)
    except ConfigError as e:  # trained with Triton on a GPU, served here: the reference computes the same
        print(f"warning: {e}; scoring with kernel.backend='reference'", file=sys.stderr, flush=True)
        backend = "reference"
    split = load_split(config.data)
    check_trained_data(run_dir, split)
    features, user_features = load_item_features(config, split.data), load_user_features(config, split.data)
    model = build_model(
        config.model,
        split.data.num_items,
        backend=backend,
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
    if not _all_finite(nnx.state(model, nnx.Param)):
        raise CheckpointError(
            f"run_dir={run_dir}: the best checkpoint's weights hold NaN or infinite values (a diverged run); "
            "retrain it, e.g. with a lower train.lr"
        )
    return config, split, model


def check_trained_data(run_dir: Path, split: LeaveOneOutSplit) -> None:
    """The data read now is the data the run trained on (its `data_fingerprint.json`): the model's item rows
    and the user histories to filter would otherwise belong to other ids, with nothing to show it."""
    saved = saved_fingerprint(run_dir)
    if saved is None:
        print(
            f"warning: run_dir={run_dir} records no {DATA_FILE}: cannot check that the data read now is what it "
            "trained on",
            file=sys.stderr,
            flush=True,
        )
        return
    now = data_fingerprint(split.data.sequences)
    if saved != now:
        raise DataError(
            f"run_dir={run_dir}: the data changed since the run trained (now {now['users']} users, "
            f"{now['interactions']} interactions; then {saved.get('users')}, {saved.get('interactions')}; "
            f"data: {split.data.report.get('source')}): its item and user rows would name other ids; point the run's "
            "config.yaml at the data it trained on, or train a new run"
        )


def _all_finite(state) -> bool:
    leaves = [x for x in jax.tree.leaves(state) if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.inexact)]
    return all(bool(jax.numpy.isfinite(x).all()) for x in leaves)


def check_recommend_args(k, users, batch_size, item_chunk) -> None:
    """The arguments of `recommend`, checked before anything is loaded: one ConfigError naming the bad one."""
    for key, value, low in (("k", k, 1), ("batch_size", batch_size, 1), ("item_chunk", item_chunk, 0)):
        if key == "item_chunk" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ConfigError(f"{key}={cut(value)} must be an integer")
        if value < low:
            raise ConfigError(f"{key}={value} must be at least {low}")
    if users is not None and len(users) == 0:
        raise ConfigError("users=[] names no user; leave users out to recommend for every user")


def check_out_path(out) -> Path:
    """`out` can be written: not a directory, and its directory exists."""
    path = Path(str(out)).expanduser()
    if path.is_dir():
        raise ConfigError(f"out={out} is a directory; give a file name, e.g. out={path / 'recs.csv'}")
    if not path.parent.is_dir():
        raise ConfigError(f"out={out}: the directory {path.parent} does not exist")
    return path


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
    check_recommend_args(k, users, batch_size, item_chunk)
    config, split, model = load_run(run_dir)
    num_items = split.data.num_items
    asked, k = k, min(k, num_items)  # no user has more unseen items than the catalogue
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
        if chunked is not None and model_kind(model).dot_product_scores:
            return chunked(user_vectors(model, inputs, users, events), model.item_table(), seen)
        return full_topk(score_all(model, inputs, users, events), seen, k, num_items)  # seen, padding, pad rows

    histories = split.history(rows, "all")
    history_events = split.history_events(rows, "all")  # None when the data has no event column
    longest = max(len(h) for h in histories)
    frames, short = [], 0
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
        keep = unseen_unique(items, [histories[i] for i in batch[:n]], values, num_items)  # [n, k]
        short += int((keep.sum(axis=1) < asked).sum())
        frames.append(
            pd.DataFrame(
                {
                    "user": np.repeat(split.data.user_ids[rows[start : start + n]], keep.sum(axis=1)),
                    "rank": np.cumsum(keep, axis=1)[keep],
                    "item": split.data.item_ids[items[keep]],
                    "score": values[keep],
                }
            )
        )
    if short:
        print(
            f"warning: {short} of {len(rows)} users have fewer than k={asked} unseen items; they get fewer rows",
            file=sys.stderr,
            flush=True,
        )
    return pd.concat(frames, ignore_index=True)


def unseen_unique(items: np.ndarray, histories: Sequence[np.ndarray], scores: np.ndarray, num_items: int) -> np.ndarray:
    """[B, K] mask of the top-K entries that are real items (1..num_items), unseen, scored, and not repeated.

    The device's top-K fills rows with masked (-inf) entries when a user has fewer than K candidates:
    padding, seen items and repeats of the chunked scan; none of them may reach the output."""
    keep = (items >= 1) & (items <= num_items) & np.isfinite(scores)  # NaN / -inf: masked or unscored
    for row, history in enumerate(histories):
        keep[row] &= ~np.isin(items[row], history)
        _, first = np.unique(items[row], return_index=True)
        once = np.zeros(items.shape[1], bool)
        once[first] = True
        keep[row] &= once
    return keep
