"""What a recommender offers its callers (training step, evaluation, recommendations): three kinds of
model, each a `Protocol`, declared at registration (`register_model(name, kind=...)`) and on the model
class (`kind`), so that callers dispatch on the declaration instead of probing for methods.

One calling convention: `f(seq, *, events=None, users=None)`. `seq` [B, L] is a batch of left-padded
histories (0 = padding); `events` [B, L] their event types (data.event_col), required by a model built
with event types and refused by one built without; `users` [B] the user indices, read only by the
user-features wrapper (models/user_features.py) and ignored by every other model.

- DOT_PRODUCT: a sequence encoder (sasrec, attn_pool, lstm, gru4rec). Trained by the configured
  next-item loss over `encode`'s states against `item_table`; scored by user_representation · table.
- OWN_LOSS: trained by its own `train_loss` (bert4rec: masked items; bpr_mf: pairs), scored by
  user_representation · table.
- OWN_SCORING: scores candidates itself, `score_all` / `score_items` (din: target attention; pop), and
  trains by its own `train_loss`.

OWN_LOSS and OWN_SCORING models also take `user_offset` ([B, D], the user-features wrapper's projected
user features W f_u) in `train_loss`, `score_all` and `score_items`: they add it to their user wherever
they form one (pop, which takes no user features, never gets one).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from flax import nnx
from jaxtyping import Array, Float, Int

Seq = Int[Array, "B L"]  # left-padded item ids
Events = Int[Array, "B L"] | None  # event types aligned with seq (0 on padding)
Users = Int[Array, " B"] | None  # user indices
UserOffset = Float[Array, "B D"] | None  # the user-features wrapper's W f_u


class ModelKind(enum.Enum):
    DOT_PRODUCT = "dot_product"
    OWN_LOSS = "own_loss"
    OWN_SCORING = "own_scoring"

    @property
    def dot_product_scores(self) -> bool:
        """Scored by user_representation · item_table (the chunked and item-sharded scans apply)."""
        return self is not ModelKind.OWN_SCORING


@runtime_checkable
class DotProductScorer(Protocol):
    """Scores are user_representation(seq) · item_table()ᵀ: OWN_LOSS models, and the base of DOT_PRODUCT."""

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]: ...

    def item_table(self) -> Float[Array, "I D"]:
        """[I+1, D] item vectors (row 0 padding; on a mesh, zero pad rows after row I)."""
        ...


@runtime_checkable
class SequenceEncoder(DotProductScorer, Protocol):
    """DOT_PRODUCT: a hidden state per position, each predicting the next item against item_table()."""

    def encode(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]: ...


@runtime_checkable
class OwnLoss(Protocol):
    """A training objective of the model's own; `batch` holds inputs, targets (and users, events, ...)."""

    def train_loss(
        self,
        batch: Mapping[str, Array],
        loss_fn: Callable,
        rng: Array,
        rngs: nnx.Rngs | None,
        *,
        user_offset: UserOffset = None,
    ) -> Float[Array, ""]: ...


@runtime_checkable
class OwnLossModel(DotProductScorer, OwnLoss, Protocol):
    """OWN_LOSS: its own training objective, scored by user_representation · item_table."""


@runtime_checkable
class OwnScoring(OwnLoss, Protocol):
    """OWN_SCORING: scores of every item, or of given candidates, computed by the model itself."""

    def score_all(
        self, seq: Seq, *, events: Events = None, users: Users = None, user_offset: UserOffset = None
    ) -> Float[Array, "B I"]:
        """Scores of items 0..I (and mesh-pad rows, if any); callers mask padding."""
        ...

    def score_items(
        self,
        seq: Seq,
        items: Int[Array, "B C"],
        *,
        events: Events = None,
        users: Users = None,
        user_offset: UserOffset = None,
    ) -> Float[Array, "B C"]: ...


PROTOCOLS: dict[ModelKind, type] = {
    ModelKind.DOT_PRODUCT: SequenceEncoder,
    ModelKind.OWN_LOSS: OwnLossModel,
    ModelKind.OWN_SCORING: OwnScoring,
}


def model_kind(model: object) -> ModelKind:
    """The kind a model declares (its class's `kind`; the user-features wrapper forwards its model's)."""
    kind = getattr(model, "kind", None)
    if not isinstance(kind, ModelKind):
        raise TypeError(f"{type(model).__name__} declares no ModelKind (a `kind` attribute); see models/interface.py")
    return kind


def refuse_events(events: Events, model: str) -> None:
    """For models without per-position inputs (pop, bpr_mf): events would be silently ignored."""
    if events is not None:
        raise ValueError(f"{model} has no per-position input to add event types to, but got events=")
