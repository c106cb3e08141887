"""The learning rate of every step: `train.lr`, after `train.warmup_steps` of linear warmup, constant or cosine."""

from __future__ import annotations

import optax

from recattn_jax.config import TrainConfig
from recattn_jax.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def learning_rate(config: TrainConfig, total_steps: int | None = None) -> float | optax.Schedule:
    """`train.lr` itself when constant without warmup (the optimizer of earlier runs, bit for bit), else a
    schedule of the step: 0 -> lr linearly over `warmup_steps`, then lr (constant) or a cosine from lr to 0
    at `total_steps` (the run's planned steps; needed by `cosine` only)."""
    if config.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule={config.lr_schedule!r}; choose one of {list(LR_SCHEDULES)}")
    warmup = config.warmup_steps
    if config.lr_schedule == "constant":
        if warmup == 0:
            return config.lr
        after = optax.constant_schedule(config.lr)
    else:
        if total_steps is None:
            raise ConfigError("train.lr_schedule=cosine needs the run's total steps (make_optimizer's total_steps)")
        if warmup >= total_steps:
            raise ConfigError(f"train.warmup_steps={warmup} leaves none of the run's {total_steps} steps to decay")
        after = optax.cosine_decay_schedule(config.lr, decay_steps=total_steps - warmup)
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, config.lr, warmup), after], [warmup])
