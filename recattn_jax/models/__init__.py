"""Recommenders, built by name from an explicit registry (`model.name` in the config)."""

from __future__ import annotations

from collections.abc import Callable

from flax import nnx

from recattn_jax.errors import ConfigError
from recattn_jax.models.interface import ModelKind, model_kind

MODELS: dict[str, Callable[..., nnx.Module]] = {}
KINDS: dict[str, ModelKind] = {}  # what each model offers its callers (models/interface.py)
WITH_ITEM_FEATURES: set[str] = set()  # models whose builder takes `features=` (fused item representation)
WITH_USER_FEATURES: set[str] = set()  # models that can add a user side-feature vector (models/user_features.py)
WITH_EVENTS: set[str] = set()  # models whose builder takes `num_event_types=` (an event embedding per position)


def register_model(
    name: str, *, kind: ModelKind, item_features: bool = False, user_features: bool = False, events: bool = False
):
    def register(builder):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        KINDS[name] = kind
        if item_features:
            WITH_ITEM_FEATURES.add(name)
        if user_features:
            WITH_USER_FEATURES.add(name)
        if events:
            WITH_EVENTS.add(name)
        return builder

    return register


def build_model(
    config,
    num_items: int,
    *,
    backend: str,
    rngs: nnx.Rngs,
    features=None,
    user_features=None,
    num_event_types: int = 0,
) -> nnx.Module:
    """The model `config.name` for a catalogue of `num_items` items (ids 1..num_items), with the side
    features of recattn_jax.features fused into its item representation when `features` is given,
    a [users, F] `user_features` matrix added to its user representation when given, and an embedding
    of `num_event_types` event types (SequenceData.num_event_types) added to each position when > 0."""
    if config.name not in MODELS:
        raise ConfigError(f"model.name={config.name!r} is not registered; choose one of {sorted(MODELS)}")
    extra = {}
    if features is not None:
        if config.name not in WITH_ITEM_FEATURES:
            raise ConfigError(
                f"model={config.name} has no item-feature fusion; use one of {sorted(WITH_ITEM_FEATURES)}"
            )
        extra["features"] = features
    if num_event_types:
        if config.name not in WITH_EVENTS:
            raise ConfigError(
                f"model={config.name} has no per-position input to add an event embedding to, but the data has "
                f"{num_event_types} event types; drop data.event_col (or data.synthetic.events) "
                f"or use one of {sorted(WITH_EVENTS)}"
            )
        extra["num_event_types"] = num_event_types
    model = MODELS[config.name](config, num_items, backend=backend, rngs=rngs, **extra)
    declared = model_kind(model)
    if declared is not KINDS[config.name]:
        raise TypeError(f"model {config.name!r} is registered as {KINDS[config.name]} but declares {declared}")
    if user_features is not None:
        from recattn_jax.models.user_features import with_user_features

        if config.name not in WITH_USER_FEATURES:
            raise ConfigError(
                f"model={config.name} has no user representation to add user features to "
                f"(model.user_features=true); use one of {sorted(WITH_USER_FEATURES)}"
            )
        model = with_user_features(model, user_features, hidden=config.hidden, rngs=rngs)
    return model


def item_embedding(
    config,
    num_items: int,
    *,
    backend: str,
    rngs: nnx.Rngs,
    features=None,
    extra_rows: int = 0,
    num_event_types: int = 0,
):
    """SequenceEmbedding of items 1..num_items (+ `extra_rows` special tokens), fused with `features`,
    plus an event-type embedding when `num_event_types` > 0."""
    from recattn_jax.layers.embeddings import POSITIONS, SequenceEmbedding

    if config.positions not in POSITIONS:
        raise ConfigError(f"model.positions={config.positions!r}; choose one of {list(POSITIONS)}")
    fusion = field_fusion(config, num_items + 1 + extra_rows, backend=backend, rngs=rngs, features=features)
    return SequenceEmbedding(
        num_items + extra_rows,
        config.hidden,
        config.max_len,
        rngs=rngs,
        fusion=fusion,
        num_event_types=num_event_types,
        from_oldest=config.positions == "from_oldest",
    )


def item_table(config, num_items: int, init, *, backend: str, rngs: nnx.Rngs, features=None):
    """ItemTable of items 0..num_items (0 = padding) with `init`, fused with `features` when given."""
    from recattn_jax.layers.embeddings import ItemTable

    fusion = field_fusion(config, num_items + 1, backend=backend, rngs=rngs, features=features)
    return ItemTable(num_items + 1, config.hidden, init, rngs=rngs, fusion=fusion)


def field_fusion(config, rows: int, *, backend: str, rngs: nnx.Rngs, features=None):
    """FieldFusion over `rows` item rows (features padded to them), or None without features."""
    from recattn_jax.layers.field_fusion import FieldFusion

    if features is None:
        return None
    return FieldFusion(features.padded(rows), config.hidden, config.heads, backend=backend, rngs=rngs)


from recattn_jax.models import (  # noqa: E402,F401  (each module registers its model)
    attn_pool,
    bert4rec,
    bpr_mf,
    din,
    pop,
    recurrent,
    sasrec,
)
