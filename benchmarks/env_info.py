"""Date, commit, machine and versions stamped on every benchmark result."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def environment(*packages: str) -> dict[str, str]:
    import jax

    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.processor() or platform.system()}",
        "device": f"{device.platform}: {getattr(device, 'device_kind', device)}",
        "python": platform.python_version(),
        **versions("jax", "jaxlib", "flax", "optax", *packages),
    }


def experiment_split(experiment: str, overrides: tuple[str, ...] | list[str] = ()):
    """(config, split) of `experiment=NAME` (and Hydra `overrides`), or None with a printed reason when its data
    is absent (ML-1M is read from ../shared/data/ml-1m and is not redistributable)."""
    from hydra import compose, initialize_config_dir

    from recattn_jax.config import register_configs, to_config
    from recattn_jax.data.load import load_split
    from recattn_jax.errors import DataError

    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        config = to_config(compose("config", overrides=[f"experiment={experiment}", *overrides]))
    try:
        return config, load_split(config.data)
    except DataError as e:
        print(f"skipped: {e} (ML-1M is read from ../shared/data/ml-1m)")
        return None


def with_step_fields(config, batch: dict) -> dict:
    """A host batch with what run_epoch adds on one device (train/epoch.py: `epoch_options`): packed target
    positions for a loss over positions, and the rows' items as `seen` for a loss that leaves them out
    (loss.exclude_seen, loss.sampler=uniform)."""
    from recattn_jax.data.batches import step_positions
    from recattn_jax.train.epoch import epoch_options

    options = epoch_options(config.loss, None)
    if options["pack"]:
        batch["positions"] = step_positions(batch["targets"])
    if options["seen"]:
        batch["seen"] = batch["inputs"]
    return batch
