"""The data set named by the config, as per-user sequences with a leave-one-out split."""

from __future__ import annotations

from pathlib import Path

from recattn_jax.config import DataConfig
from recattn_jax.data.preprocess import LeaveOneOutSplit, build_sequences, leave_one_out_split
from recattn_jax.data.readers import Interactions, read_sasrec_txt, read_table
from recattn_jax.errors import ConfigError, DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_SOURCES = ("synthetic", "sasrec_txt", "csv")


def resolve_path(path: str) -> Path:
    """A relative path is looked up in the working directory, then in the project root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    if (PROJECT_ROOT / p).exists():
        return PROJECT_ROOT / p
    raise DataError(f"{path}: no such file (looked in {Path.cwd()} and {PROJECT_ROOT})")


def read_interactions(config: DataConfig) -> Interactions:
    if config.name == "synthetic":
        from recattn_jax.data.synthetic import generate_synthetic_with_sequels
        from recattn_jax.data.synthetic_events import synthetic_events

        spec = config.synthetic  # a SyntheticSpec; `events` is no generator setting: labels drawn after the items
        try:
            spec.validate()
        except ValueError as e:
            raise ConfigError(f"data.synthetic: {e}") from None
        users, items, from_sequel = generate_synthetic_with_sequels(spec)
        events = synthetic_events(users, from_sequel, spec.seed) if spec.events else None
        return Interactions(users=users, items=items, source=f"synthetic(seed={spec.seed})", events=events)
    if config.name not in DATA_SOURCES:
        raise ConfigError(f"data.name={config.name!r}; choose one of {DATA_SOURCES}")
    if not config.path:
        raise ConfigError(f"data={config.name} needs data.path=FILE")
    path = resolve_path(config.path)
    if config.name == "sasrec_txt":
        return read_sasrec_txt(path)
    return read_table(
        path,
        user_col=config.user_col,
        item_col=config.item_col,
        time_col=config.time_col,
        event_col=config.event_col,
    )


def load_split(config: DataConfig) -> LeaveOneOutSplit:
    interactions = read_interactions(config)
    data = build_sequences(
        interactions,
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
    )
    return leave_one_out_split(data)
