"""Where a run stands, saved beside the training state so that `train.resume=true` ends exactly as an
uninterrupted run would.

The rest needs no saving: the per-step RNG is `fold_in(key, optimizer.step)` (restored with the
optimizer) and an epoch's batch order depends only on (seed, epoch), so skipping the epoch's first
`epoch_step` batches puts the data iterator where it was.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf
from tqdm import tqdm

from recattn_jax.config import Config, TrainConfig, to_config, to_dict
from recattn_jax.errors import ConfigError, RecattnError

if TYPE_CHECKING:
    from flax import nnx

    from recattn_jax.train.checkpoint import LatestCheckpoint

# keys that may differ between an interrupted run and its resumption; `patience` only moves where training
# ends, so a run stopped early can be resumed from its last checkpoint before the stop with a longer patience
RESUME_FREE_KEYS = ("resume", "stop_after_steps", "progress", "tensorboard", "epochs", "max_steps", "patience")


@dataclasses.dataclass
class RunPosition:
    epoch: int = 0  # the epoch in progress (in_epoch) or the last one finished; epochs count from 1
    in_epoch: bool = False  # the epoch has steps or its evaluation still to do
    epoch_step: int = 0  # steps done in the epoch
    epoch_losses: list[float] = dataclasses.field(default_factory=list)  # their losses (float32 values)
    # the losses of the steps since the last `train` record of metrics.jsonl, which the next one averages
    log_losses: list[float] = dataclasses.field(default_factory=list)
    step: int = 0  # steps done in all
    best: float | None = None  # best valid NDCG@10 so far
    bad_evals: int = 0  # evaluations since the best (early stopping)
    early_stopped: bool = False
    train_seconds: float = 0.0
    history: list[dict] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RunPosition:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def best_or_minus_inf(self) -> float:
        return -math.inf if self.best is None else self.best


def resume(
    train: TrainConfig, latest: LatestCheckpoint, state: nnx.State, workdir: Path
) -> tuple[nnx.State, RunPosition, int | None]:
    """Where the run starts: with `train.resume`, the state and position of the latest checkpoint; else step 0.
    Returns (state, position, the step resumed from or None)."""
    if train.resume and (restored := latest.restore(state)) is not None:
        state, saved = restored
        pos = RunPosition.from_json(saved)
        tqdm.write(f"resumed at step {pos.step} (epoch {pos.epoch}, step {pos.epoch_step} of it) from {workdir}")
        return state, pos, pos.step
    if train.resume:
        print(f"train.resume=true: no checkpoint in {workdir / 'latest'} yet; starting from step 0", flush=True)
    return state, RunPosition(), None


class RunStopped(Exception):
    """`train.stop_after_steps` was reached: the run stopped as a crash would, resumable from its latest checkpoint."""

    def __init__(self, step: int, workdir: Path, checkpoint_step: int | None):
        self.step, self.workdir, self.checkpoint_step = step, workdir, checkpoint_step
        where = f"from step {checkpoint_step}" if checkpoint_step is not None else "from the start (no checkpoint yet)"
        super().__init__(
            f"stopped after {step} steps (train.stop_after_steps); continue {where} with "
            f"train.resume=true hydra.run.dir={workdir}"
        )


def check_resumable(config: Config, workdir: Path) -> None:
    """A resumed run must train what the interrupted one trained: only RESUME_FREE_KEYS of train may differ."""
    saved_file = workdir / "config.yaml"
    if not saved_file.exists():
        return
    from recattn_jax.train.run_dir import with_resolved_paths  # run_dir imports this module

    try:
        saved_config = to_config(OmegaConf.load(saved_file))
    except Exception as e:  # a cut or hand-edited file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"train.resume=true: {saved_file} cannot be read ({reason[:200]})") from e
    try:
        saved_config = with_resolved_paths(saved_config)  # runs saved before paths were stored resolved
    except RecattnError:
        pass  # the saved path no longer exists: the comparison below names it
    saved = to_dict(saved_config)
    current = to_dict(config)
    if config.train.lr_schedule == "cosine":  # its length is the run's planned steps: they must stay
        for key in ("epochs", "max_steps"):
            if saved["train"].get(key) != current["train"].get(key):
                raise ConfigError(
                    f"train.resume=true in {workdir}: train.{key}={current['train'][key]!r} (was "
                    f"{saved['train'].get(key)!r}) would re-time train.lr_schedule=cosine, which decays over the "
                    "planned steps, under the steps already trained; resume with the interrupted run's value"
                )
    for key in RESUME_FREE_KEYS:
        saved["train"].pop(key, None)
        current["train"].pop(key, None)
    diffs = [
        key for key in sorted(set(_flatten(saved)) | set(_flatten(current))) if _get(saved, key) != _get(current, key)
    ]
    if diffs:
        shown = ", ".join(f"{k}={_get(current, k)!r} (was {_get(saved, k)!r})" for k in diffs[:5])
        raise ConfigError(f"train.resume=true in {workdir}: the config differs from the interrupted run's: {shown}")


def _flatten(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        out += _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def _get(node: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
