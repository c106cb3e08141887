"""Training runs for figures: composed from conf/ like the command line, cached within one invocation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from recattn_jax.config import Config, register_configs, to_config
from recattn_jax.figures.output import PROJECT_ROOT

# quick=true: tiny synthetic data and model, a few steps; the same sizes as the test suite's TINY
QUICK = [
    "data=synthetic",
    "data.synthetic.num_users=60",
    "data.synthetic.num_items=50",
    "data.synthetic.mean_length=12",
    "data.synthetic.min_length=5",
    "data.synthetic.max_length=30",
    "model.max_len=10",
    "model.hidden=16",
    "model.blocks=1",
    "model.heads=1",
    "train.epochs=2",
    "train.batch_size=16",
    "train.max_steps=6",
    "train.progress=false",
    "train.log_every_steps=1",
    "train.tensorboard=false",
    "eval.batch_size=32",
    "eval.num_negatives=10",
]


def compose_config(overrides: list[str]) -> Config:
    """The Config `python -m experiments.train OVERRIDES` would train."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return to_config(compose("config", overrides=overrides))


def model_overrides(name: str) -> list[str]:
    """`model=NAME` where conf/model/NAME.yaml exists, else `model.name=NAME`."""
    return [f"model={name}"] if (PROJECT_ROOT / "conf" / "model" / f"{name}.yaml").exists() else [f"model.name={name}"]


class Runs:
    """Trains each distinct override list once, in `root/<index>`; returns (results, run directory)."""

    def __init__(self, root: Path, models: list[str] | None = None):
        self.root = root
        self.models = models  # what quick=true compares; None: every registered model
        self.done: dict[tuple[str, ...], tuple[dict, Path]] = {}

    def train(self, overrides: list[str]) -> tuple[dict, Path]:
        from recattn_jax.train.loop import train_and_evaluate

        key = tuple(overrides)
        if key not in self.done:
            workdir = self.root / str(len(self.done))
            shutil.rmtree(workdir, ignore_errors=True)  # scratch runs of an earlier call: a fresh run never mixes
            config = compose_config(list(overrides))
            results = train_and_evaluate(config, workdir)
            (workdir / "overrides.json").write_text(json.dumps(list(overrides)))
            self.done[key] = (results, workdir)
        return self.done[key]
