"""The item features a run asks for: `model.item_features=tfidf` reads `data.item_features`
(a MovieLens folder with movies.dat and sas_to_original_items.txt, or an item-feature table)."""

from __future__ import annotations

from recattn_jax.config import Config
from recattn_jax.data.preprocess import SequenceData
from recattn_jax.errors import ConfigError
from recattn_jax.features.item_features import ItemFeatures

ITEM_FEATURES = ("none", "tfidf")


def load_item_features(config: Config, data: SequenceData) -> ItemFeatures | None:
    from recattn_jax.data.load import resolve_path
    from recattn_jax.features.movielens import movielens_item_features
    from recattn_jax.features.table import table_item_features

    if config.model.item_features not in ITEM_FEATURES:
        raise ConfigError(f"model.item_features={config.model.item_features!r}; choose one of {ITEM_FEATURES}")
    if config.model.item_features == "none":
        return None
    if not config.data.item_features:
        raise ConfigError("model.item_features=tfidf needs data.item_features=FOLDER_OR_FILE (e.g. data=ml1m)")
    path = resolve_path(config.data.item_features)
    source = data.report.get("source", "the interaction data")
    if path.is_dir():
        features = movielens_item_features(path, data.item_ids, source=source)
    else:
        features = table_item_features(path, data.item_ids, source=source)
    data.report["item_features"] = {"file": str(path), **features.coverage}  # results.json data.item_features
    return features


def load_user_features(config: Config, data: SequenceData):
    """[U, F] user side features (ML-1M: gender, age, occupation) when `model.user_features`, else None."""
    from recattn_jax.data.load import resolve_path
    from recattn_jax.features.movielens import movielens_user_features

    if not config.model.user_features:
        return None
    path = resolve_path(config.data.item_features) if config.data.item_features else None
    if path is None or not path.is_dir():
        raise ConfigError("model.user_features=true needs data.item_features=MOVIELENS_FOLDER with users.dat")
    return movielens_user_features(path, data.user_ids, source=data.report.get("source", "the interaction data"))
