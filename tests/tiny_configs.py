"""Tiny synthetic configs that train in seconds on 2 CPU cores, and where ML-1M lies."""

from pathlib import Path

ML1M = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m"

TINY = {
    "data": {"synthetic": {"num_users": 60, "num_items": 50, "mean_length": 12, "min_length": 5, "max_length": 30}},
    "model": {"max_len": 10, "hidden": 16, "blocks": 1, "heads": 2, "dropout": 0.1},
    "train": {"epochs": 1, "batch_size": 16, "max_steps": 2, "progress": False},
    "eval": {"batch_size": 32, "num_negatives": 10},
}


def tiny_overrides() -> list[str]:
    """TINY as Hydra command-line overrides."""
    out = []

    def walk(prefix, node):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                out.append(f"{prefix}{key}={str(value).lower() if isinstance(value, bool) else value}")

    walk("", TINY)
    return out
