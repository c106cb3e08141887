"""`model.user_features=true`: the user's side-feature vector, projected (W f_u), is added to the
user representation, at every training position and at scoring time. Composes around the model;
needs the user index (`needs_users`).

- Encoder models (sasrec, attn_pool, lstm, gru4rec): encoder state + W f_u, scored by dot product.
- Models with their own objective (bert4rec, bpr_mf) take W f_u as `user_offset` in `train_loss`;
  their user representation + W f_u is scored by dot product.
- Target attention (din) adds `user_offset` to the interest of each candidate inside
  `score_all` / `score_items` / `train_loss` (TargetWithUserFeatures).

W starts at zero, so training starts from the model without user features.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.field_fusion import FeatureConstant
from recattn_jax.models.scoring import event_kwargs


class WithUserFeatures(nnx.Module):
    needs_users = True

    def __init__(self, inner: nnx.Module, user_features: np.ndarray, dim: int, *, rngs: nnx.Rngs):
        self.inner = inner
        self.user_features = FeatureConstant(jnp.asarray(user_features, jnp.float32))  # [U, F]
        self.project = nnx.Linear(user_features.shape[1], dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def user_vector(self, users: Int[Array, " B"]) -> Float[Array, "B D"]:
        return self.project(self.user_features[...][jnp.maximum(users, 0)])  # -1 (a padding row) -> any user

    def encode(
        self,
        seq: Int[Array, "B L"],
        users: Int[Array, " B"],
        *,
        events: Int[Array, "B L"] | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        return self.inner.encode(seq, events=events, rngs=rngs) + self.user_vector(users)[:, None]

    def train_loss(self, batch, loss_fn, rng, rngs):
        if hasattr(self.inner, "train_loss"):
            return self.inner.train_loss(batch, loss_fn, rng, rngs, user_offset=self.user_vector(batch["users"]))
        hidden = self.encode(batch["inputs"], batch["users"], events=batch.get("events"), rngs=rngs)
        return loss_fn(hidden, self.item_table(), batch["targets"], rng)

    def item_table(self) -> Float[Array, "I D"]:
        return self.inner.item_table()

    def user_representation(
        self, seq: Int[Array, "B L"], users: Int[Array, " B"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.inner.user_representation(seq, **event_kwargs(events)) + self.user_vector(users)


class TargetWithUserFeatures(WithUserFeatures):
    """User features of a target-attention model, whose score is not a dot product with a user vector."""

    def score_all(
        self, seq: Int[Array, "B L"], users: Int[Array, " B"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B I"]:
        return self.inner.score_all(seq, user_offset=self.user_vector(users), **event_kwargs(events))

    def score_items(
        self,
        seq: Int[Array, "B L"],
        items: Int[Array, "B C"],
        users: Int[Array, " B"],
        events: Int[Array, "B L"] | None = None,
    ) -> Float[Array, "B C"]:
        return self.inner.score_items(seq, items, user_offset=self.user_vector(users), **event_kwargs(events))


def with_user_features(model: nnx.Module, user_features: np.ndarray, *, rngs: nnx.Rngs) -> WithUserFeatures:
    """`model` with the projected `user_features` ([U, F], row = user index) added to its user."""
    if hasattr(model, "score_all"):  # target attention: the width of its item representation
        return TargetWithUserFeatures(model, user_features, model.embedding.table.shape[1], rngs=rngs)
    return WithUserFeatures(model, user_features, model.item_table().shape[1], rngs=rngs)
