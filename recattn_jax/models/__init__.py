"""Recommenders, built by name from an explicit registry (`model.name` in the config)."""

from __future__ import annotations

from collections.abc import Callable

from flax import nnx

from recattn_jax.errors import ConfigError

MODELS: dict[str, Callable[..., nnx.Module]] = {}


def register_model(name: str):
    def register(builder):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        return builder

    return register


def build_model(config, num_items: int, *, backend: str, rngs: nnx.Rngs) -> nnx.Module:
    """The model `config.name` for a catalogue of `num_items` items (ids 1..num_items)."""
    if config.name not in MODELS:
        raise ConfigError(f"model.name={config.name!r} is not registered; choose one of {sorted(MODELS)}")
    return MODELS[config.name](config, num_items, backend=backend, rngs=rngs)


from recattn_jax.models import (  # noqa: E402,F401  (each module registers its model)
    attn_pool,
    bert4rec,
    bpr_mf,
    din,
    gru4rec,
    lstm,
    pop,
    sasrec,
)
