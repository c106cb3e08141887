"""A Hydra callback that ends every multirun with its table: `hydra.callbacks.aggregate` in conf/config.yaml."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class AggregateSweep(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from recattn_jax.sweep.aggregate import FAILED, aggregate_sweep, read_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            written = aggregate_sweep(sweep_dir)
        except FileNotFoundError as e:  # e.g. every job failed before writing anything
            log.warning("no sweep summary: %s", e)
            return
        print((sweep_dir / "summary.md").read_text())
        print("sweep summary: " + ", ".join(str(p) for p in written.values()))
        failed = read_summary(sweep_dir)["status"].astype(str).str.startswith(FAILED)
        if failed.any():  # the other jobs ran and are summarised; the sweep as a whole still reports the failure
            from recattn_jax.cli import UserErrorExit

            reason = f"{int(failed.sum())} of {len(failed)} jobs failed (listed in {sweep_dir / 'summary.md'})"
            print(f"error: {reason}", file=sys.stderr, flush=True)
            raise UserErrorExit(reason)
