"""Divergence checks: a non-finite loss, parameter or valid metric stops the run at once, with one line.

NaN compares false, so a ranking metric over NaN scores reads 1.0: a diverged model must never be
evaluated, kept as the best checkpoint or reported. The checks cost no extra host sync per step: the
losses are checked when the loop already has them on the host (after each segment between
checkpoints), the parameters once before every checkpoint and evaluation. Finite parameters can still
give NaN scores (1e30-sized weights overflow in the forward pass), so `FiniteCheck` also scores a few
users' histories and checks the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from recattn_jax.data.batches import left_pad
from recattn_jax.errors import TrainingDiverged
from recattn_jax.models.scoring import score_all


def _advice(lr: float) -> str:
    return f"nothing of this run is reported or kept as best; try a lower train.lr (now {lr:g})"


def check_losses(losses: Sequence[float], first_step: int, epoch: int, lr: float) -> None:
    """`losses` of steps first_step+1, first_step+2, ...: raise at the first non-finite one."""
    values = np.asarray(losses, np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        step = first_step + int(bad[0]) + 1
        raise TrainingDiverged(
            f"training diverged: the loss is {values[bad[0]]} at step {step} (epoch {epoch}); {_advice(lr)}"
        )


@jax.jit
def _all_finite(leaves) -> jax.Array:
    checks = [jnp.all(jnp.isfinite(x)) for x in leaves]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def check_params(state, step: int, epoch: int, lr: float) -> None:
    """Every floating-point array of `state` (model and optimizer) is finite."""
    leaves = [x for x in jax.tree.leaves(state) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)]
    if not bool(_all_finite(leaves)):
        raise TrainingDiverged(
            f"training diverged: the parameters hold NaN or infinite values after step {step} (epoch {epoch}); "
            f"{_advice(lr)}"
        )


class FiniteCheck:
    """Parameters, optimizer state and the scores of a few valid users all finite: one jitted reduction.

    The probe users are the first `probe_users` eval users of the split, the same on every process."""

    def __init__(self, graphdef, split, max_len: int, lr: float, probe_users: int = 8):
        rows = np.asarray(split.eval_users[:probe_users])
        inputs = left_pad(split.history(rows, "valid"), max_len)
        history_events = split.history_events(rows, "valid")
        events = None if history_events is None else left_pad(history_events, max_len)
        self.lr = lr

        @jax.jit
        def finite(state):
            model, _ = nnx.merge(graphdef, state)
            scores = score_all(model, inputs, rows, events)
            leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
            return _all_finite(leaves), jnp.all(jnp.isfinite(scores))

        self.finite = finite

    def __call__(self, state, step: int, epoch: int) -> None:
        params_ok, scores_ok = (bool(x) for x in self.finite(state))
        if not params_ok:
            what = "the parameters hold NaN or infinite values"
        elif not scores_ok:
            what = "the model's scores are NaN or infinite (parameters too large)"
        else:
            return
        raise TrainingDiverged(f"training diverged: {what} after step {step} (epoch {epoch}); {_advice(self.lr)}")


def check_metrics(metrics: dict, name: str, step: int, epoch: int, lr: float) -> None:
    """Every metric of `metrics` ({protocol: {metric: value}}) is finite."""
    for protocol, values in metrics.items():
        for metric, value in values.items():
            if not np.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged: {name} {protocol} {metric} is {value} after step {step} (epoch {epoch}); "
                    f"{_advice(lr)}"
                )
