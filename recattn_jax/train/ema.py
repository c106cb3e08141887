"""`train.ema_decay`: an exponential moving average of the weights, which validation, model selection, the
best checkpoint and the test metrics use in place of the trained weights (Polyak averaging).

The average lives in the optimizer's state, as the last transformation of its chain: it is saved in the
latest checkpoint with the Adam moments, placed on a mesh like them, and restored by `train.resume=true`
with them, so a resumed run averages exactly as an uninterrupted one. Training itself never reads it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class EmaState(NamedTuple):
    ema: optax.Params  # the params' structure: decay * ema + (1 - decay) * params after each step


def ema_of_params(decay: float) -> optax.GradientTransformation:
    """Leaves the updates as they are and keeps ema <- decay * ema + (1 - decay) * (params + updates), the
    params after this step; ema starts at the initial params. Put it last in a chain: it must see the
    final updates."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay={decay} must be in [0, 1)")

    def init(params):
        return EmaState(ema=jax.tree.map(lambda p: jnp.array(p, copy=True), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("ema_of_params needs the params: call the optimizer's update with them")
        new_params = optax.apply_updates(params, updates)  # in the params' dtypes
        return updates, EmaState(ema=optax.tree_utils.tree_update_moment(new_params, state.ema, decay, order=1))

    return optax.GradientTransformation(init, update)


def averaged_weights(optimizer_state) -> nnx.State | None:
    """The averaged weights in an optimizer's state (None when it keeps none), as a State of arrays."""
    leaves = jax.tree.leaves(optimizer_state, is_leaf=lambda x: isinstance(x, EmaState))
    found = [leaf for leaf in leaves if isinstance(leaf, EmaState)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"the optimizer keeps {len(found)} weight averages; expected one")
    return nnx.as_pure(found[0].ema)


def with_averaged_weights(model: nnx.Module, optimizer: nnx.Optimizer) -> nnx.Module:
    """`model` itself when the optimizer keeps no average, else a copy of it with the averaged weights in
    place of its parameters. A copy: the model of `nnx.merge(graphdef, state)` shares its variables with
    `state`, which training goes on from."""
    averaged = averaged_weights(optimizer.opt_state)
    if averaged is None:
        return model
    averaged_model = nnx.clone(model)
    nnx.update(averaged_model, averaged)
    return averaged_model
