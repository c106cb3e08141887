"""`model.user_features=true`: the user's side-feature vector, projected (W f_u), is added to the
user representation, at every training position and at scoring time. Composes around the model, whose
kind it keeps (models/interface.py), and reads the `users=` every call passes.

- DOT_PRODUCT models (sasrec, attn_pool, lstm, gru4rec): encoder state + W f_u, trained by the
  next-item loss and scored by dot product like the model itself (EncoderWithUserFeatures).
- OWN_LOSS models (bert4rec, bpr_mf) take W f_u as `user_offset` in `train_loss`; their user
  representation + W f_u is scored by dot product (OwnLossWithUserFeatures).
- OWN_SCORING target attention (din) adds `user_offset` to the interest of each candidate inside
  `score_all` / `score_items` / `train_loss` (TargetWithUserFeatures).

W starts at zero, so training starts from the model without user features. A model whose user vector ends in
constant columns (`constant_columns`: lstm's 1 that multiplies each item's bias) keeps them: W f_u is zero there,
so the user's features move the hidden state and never rescale the item bias.
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.field_fusion import FeatureConstant
from recattn_jax.models.interface import (
    DotProductScorer,
    Events,
    ModelKind,
    OwnLoss,
    OwnLossModel,
    OwnScoring,
    Seq,
    SequenceEncoder,
    Users,
    model_kind,
)

M = TypeVar("M", SequenceEncoder, OwnLossModel, OwnScoring)  # the wrapped model's protocol (its kind's)
D = TypeVar("D", SequenceEncoder, OwnLossModel)  # ... of a model scored by dot product


class UserFeatures(nnx.Module, Generic[M]):
    """The projection W f_u of the users' features and the model it is added to (`inner`)."""

    inner: M

    def __init__(self, inner: M, user_features: np.ndarray, dim: int, *, rngs: nnx.Rngs, constant_columns: int = 0):
        self.inner = inner
        self.user_features = FeatureConstant(jnp.asarray(user_features, jnp.float32))  # [U, F]
        self.project = nnx.Linear(user_features.shape[1], dim, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.constant_columns = constant_columns  # trailing columns of the user vector that W f_u leaves alone

    @property
    def kind(self) -> ModelKind:
        return model_kind(self.inner)

    def user_vector(self, users: Users) -> Float[Array, "B D"]:
        if users is None:
            raise ValueError("this model adds user features: pass the user indices (users=)")
        offset = self.project(self.user_features[...][jnp.maximum(users, 0)])  # -1 (a padding row) -> any user
        return jnp.pad(offset, ((0, 0), (0, self.constant_columns)))


def _offset_loss(wrapper: UserFeatures, inner: OwnLoss, batch, loss_fn, rng, rngs) -> Float[Array, ""]:
    """The inner model's own loss (OWN_LOSS, OWN_SCORING) with its user offset by W f_u."""
    return inner.train_loss(batch, loss_fn, rng, rngs, user_offset=wrapper.user_vector(batch.get("users")))


class DotProductWithUserFeatures(UserFeatures[D], Generic[D]):
    """Dot-product scoring of the offset user representation."""

    def item_table(self) -> Float[Array, "I D"]:
        return self.inner.item_table()

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        return self.inner.user_representation(seq, events=events) + self.user_vector(users)


class OwnLossWithUserFeatures(DotProductWithUserFeatures[OwnLossModel]):
    """OWN_LOSS: the model's own loss, and dot-product scoring of the offset user."""

    def train_loss(self, batch, loss_fn, rng, rngs) -> Float[Array, ""]:
        return _offset_loss(self, self.inner, batch, loss_fn, rng, rngs)


class EncoderWithUserFeatures(DotProductWithUserFeatures[SequenceEncoder]):
    """DOT_PRODUCT: every encoded state is offset, so the next-item loss and the scores see the user."""

    def encode(
        self, seq: Seq, *, events: Events = None, users: Users = None, rngs: nnx.Rngs | None = None
    ) -> Float[Array, "B L D"]:
        return self.inner.encode(seq, events=events, rngs=rngs) + self.user_vector(users)[:, None]


class TargetWithUserFeatures(UserFeatures[OwnScoring]):
    """OWN_SCORING target attention, whose score is not a dot product with a user vector."""

    def score_all(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B I"]:
        return self.inner.score_all(seq, events=events, user_offset=self.user_vector(users))

    def score_items(
        self, seq: Seq, items: Int[Array, "B C"], *, events: Events = None, users: Users = None
    ) -> Float[Array, "B C"]:
        return self.inner.score_items(seq, items, events=events, user_offset=self.user_vector(users))

    def train_loss(self, batch, loss_fn, rng, rngs) -> Float[Array, ""]:
        return _offset_loss(self, self.inner, batch, loss_fn, rng, rngs)


def with_user_features(model: nnx.Module, user_features: np.ndarray, *, hidden: int, rngs: nnx.Rngs) -> UserFeatures:
    """`model` with the projected `user_features` ([U, F], row = user index) added to its user: to its
    dot-product user vector (the item table's width), or to target attention's interest (`hidden` wide).
    The model's declared kind tells which protocol it implements."""
    kind = model_kind(model)
    if kind is ModelKind.OWN_SCORING:
        return TargetWithUserFeatures(cast(OwnScoring, model), user_features, hidden, rngs=rngs)
    constant = getattr(model, "constant_columns", 0)  # e.g. lstm's bias column, matched by a constant 1
    width = cast(DotProductScorer, model).item_table().shape[1] - constant
    if kind is ModelKind.DOT_PRODUCT:
        encoder = cast(SequenceEncoder, model)
        return EncoderWithUserFeatures(encoder, user_features, width, rngs=rngs, constant_columns=constant)
    own_loss = cast(OwnLossModel, model)
    return OwnLossWithUserFeatures(own_loss, user_features, width, rngs=rngs, constant_columns=constant)
