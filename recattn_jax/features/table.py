"""A generic item-feature table: CSV/TSV with columns `item`, `text` and `categories` ('|'-separated).

Items of the interaction data that the table does not list, or with empty cells, have no side
features (their ID embedding only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recattn_jax.errors import DataError
from recattn_jax.features.item_features import ItemFeatures, build_item_features


def table_item_features(path: str | Path, item_ids: np.ndarray, *, min_df: int = 1) -> ItemFeatures:
    path = Path(path)
    frame = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    if "item" not in frame.columns:
        raise DataError(f"{path}: no 'item' column (columns: {list(frame.columns)})")
    texts = dict(zip(frame["item"], frame.get("text", pd.Series([""] * len(frame))), strict=True))
    cats = dict(zip(frame["item"], frame.get("categories", pd.Series([""] * len(frame))), strict=True))
    keys = [str(i) for i in item_ids[1:]]
    return build_item_features(
        [texts.get(k, "") for k in keys],
        [[c for c in cats.get(k, "").split("|") if c] for k in keys],
        min_df=min_df,
    )
