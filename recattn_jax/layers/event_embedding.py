"""Event-type embedding (multi-behaviour input): click / purchase / ... added to each position's input.

Event codes are 1..N (the data's event types, data/preprocess.py) and 0. Code 0 is padding, and also
"event unknown" where a model hides an event (BERT4Rec's [mask] positions): row 0 is learned like the
others, and padding positions are zeroed by the models' masks, so only the [mask] use trains it.
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int


class EventEmbedding(nnx.Module):
    """x + table[events]: a [1 + N, D] table over the event codes."""

    def __init__(self, num_event_types: int, dim: int, *, rngs: nnx.Rngs):
        if num_event_types < 1:
            raise ValueError(f"num_event_types={num_event_types} must be at least 1")
        self.table = nnx.Embed(num_event_types + 1, dim, embedding_init=nnx.initializers.xavier_normal(), rngs=rngs)
        self.num_event_types = num_event_types

    def __call__(self, x: Float[Array, "B L D"], events: Int[Array, "B L"]) -> Float[Array, "B L D"]:
        if events.shape != x.shape[:-1]:
            raise ValueError(f"events of shape {events.shape} do not match the inputs' positions {x.shape[:-1]}")
        return x + self.table(events)


def event_embedding(num_event_types: int, dim: int, *, rngs: nnx.Rngs) -> EventEmbedding | None:
    """The embedding of `num_event_types` event types, or None (no table, no parameters) when 0."""
    return EventEmbedding(num_event_types, dim, rngs=rngs) if num_event_types else None


def add_events(
    x: Float[Array, "B L D"], embedding: EventEmbedding | None, events: Int[Array, "B L"] | None
) -> Float[Array, "B L D"]:
    """x with the event embedding added; x itself for a model built without events.

    A model built with event types needs them at every call, and one built without refuses them, so a
    forgotten `events=` never silently scores as if the data had none."""
    if embedding is None:
        if events is not None:
            raise ValueError("this model was built without event types (num_event_types=0) but got events")
        return x
    if events is None:
        raise ValueError(f"this model was built with {embedding.num_event_types} event types: pass events=")
    return embedding(x, events)
