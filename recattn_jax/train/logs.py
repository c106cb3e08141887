"""What a run leaves to read: `metrics.jsonl` always, TensorBoard event files when tensorboardX is installed.

Every record of `metrics.jsonl` is one JSON object with a `kind`:
  start  — git commit, resumed-from step, time;
  train  — step, epoch, mean loss since the last record, learning rate, seconds of training so far;
  eval   — step, epoch, the epoch's mean loss and every valid metric as `valid_full_NDCG@10` etc.;
  end    — the last step, the best step and the best state's test metrics as `test_full_NDCG@10` etc.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from recattn_jax.config import Config

METRICS_FILE = "metrics.jsonl"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: str | Path = PROJECT_ROOT) -> str:
    """The project's commit, with `+dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, timeout=10
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def config_yaml(config: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def print_config(config: Config) -> None:
    """The config once at the start of a run: syntax-highlighted with rich when installed, else plain."""
    text = config_yaml(config)
    try:
        from rich.console import Console
        from rich.syntax import Syntax
    except ImportError:
        print(text, flush=True)
        return
    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


def flat_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    """{'full': {'NDCG@10': x}} -> {'valid_full_NDCG@10': x}."""
    return {f"{prefix}_{protocol}_{name}": value for protocol, m in metrics.items() for name, value in m.items()}


class RunLog:
    """Appends records to `workdir/metrics.jsonl` and mirrors scalars to TensorBoard when it can."""

    def __init__(
        self,
        workdir: str | Path,
        config: Config,
        *,
        resumed_from: int | None = None,
        evaluated: bool = False,
        commit: str = "",
    ):
        """`evaluated`: the resumed checkpoint was saved after the evaluation at its step (a stop at an epoch's
        end), whose record is then kept."""
        self.path = Path(workdir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_from is not None:
            self._truncate_after(resumed_from, evaluated)
        elif self.path.exists():
            self.path.unlink()  # a fresh run in a used directory starts a fresh log
        self.file = self.path.open("a")
        self.tensorboard = None
        if config.train.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                pass
            else:
                self.tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"))
                self.tensorboard.add_text("config", "```\n" + config_yaml(config) + "\n```", resumed_from or 0)
        self.write({"kind": "start", "step": resumed_from or 0, "git_commit": commit, "resumed_from": resumed_from})

    def _truncate_after(self, step: int, evaluated: bool) -> None:
        """Keep what happened up to `step` (train records at it; the evaluation that followed it if `evaluated`)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if record.get("step", 0) < step or (
                record.get("step") == step and (evaluated or record.get("kind") != "eval")
            ):
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        """Append `record`, flushed at once: a kill -9 (which no checkpoint outlives unflushed) keeps every record
        written before it, and a resume keeps those up to its checkpoint."""
        record = {**record, "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        self.file.write(json.dumps(record, default=_json_default) + "\n")
        self.file.flush()
        if self.tensorboard is not None and record["kind"] in ("train", "eval"):
            for key, value in record.items():
                if key not in ("step", "kind", "time") and isinstance(value, int | float):
                    # TensorBoard tags allow no '@': NDCG@10 -> NDCG_at_10
                    tag = f"{record['kind']}/{key}".replace("@", "_at_")
                    self.tensorboard.add_scalar(tag, value, record["step"])

    def train(self, *, step: int, epoch: int, loss: float, lr: float, seconds: float) -> None:
        self.write({"kind": "train", "step": step, "epoch": epoch, "loss": loss, "lr": lr, "seconds": seconds})

    def eval(
        self,
        *,
        step: int,
        epoch: int,
        loss: float,
        seconds: float,
        valid: dict,
        eval_seconds: float | None = None,
        valid_trained: dict | None = None,
    ) -> None:
        """`seconds`: training time so far; `eval_seconds`: the wall time of this validation pass;
        `valid_trained`: with train.ema_decay, the metrics of the trained weights (`valid` is the average's)."""
        record = {"kind": "eval", "step": step, "epoch": epoch, "loss": loss, "seconds": seconds}
        if eval_seconds is not None:
            record["eval_seconds"] = round(eval_seconds, 3)
        record |= flat_metrics("valid", valid)
        if valid_trained is not None:
            record |= flat_metrics("valid_trained", valid_trained)
        self.write(record)

    def end(self, results: dict) -> None:
        """The run's last record: its steps, the best step and the best state's test metrics."""
        record = {"kind": "end", "step": results["steps"], "best_step": results["best_step"]}
        self.write({**record, **flat_metrics("test", results["test"])})

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close()


def read_metrics(workdir: str | Path) -> list[dict]:
    """The records of a run's `metrics.jsonl` (lines cut short by a kill are skipped)."""
    out = []
    for line in (Path(workdir) / METRICS_FILE).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _json_default(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return value if math.isfinite(value) else str(value)
