"""`model.user_features=true`: the user's side-feature vector, projected, is added to the user
representation of any encoder model (user = encoder state + W f_u), at every training position and
at scoring time. Composes around the model; needs the user index (`needs_users`)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.errors import ConfigError
from recattn_jax.layers.field_fusion import FeatureConstant


class WithUserFeatures(nnx.Module):
    needs_users = True

    def __init__(self, inner: nnx.Module, user_features: np.ndarray, *, rngs: nnx.Rngs):
        if not hasattr(inner, "encode") or hasattr(inner, "train_loss") or hasattr(inner, "score_all"):
            raise ConfigError("model.user_features=true needs a next-item encoder model (sasrec, attn_pool, lstm, ...)")
        self.inner = inner
        self.user_features = FeatureConstant(jnp.asarray(user_features, jnp.float32))  # [U, F]
        dim = inner.item_table().shape[1]
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
        hidden = self.encode(batch["inputs"], batch["users"], events=batch.get("events"), rngs=rngs)
        return loss_fn(hidden, self.item_table(), batch["targets"], rng)

    def item_table(self) -> Float[Array, "I D"]:
        return self.inner.item_table()

    def user_representation(
        self, seq: Int[Array, "B L"], users: Int[Array, " B"], events: Int[Array, "B L"] | None = None
    ) -> Float[Array, "B D"]:
        return self.inner.user_representation(seq, events) + self.user_vector(users)
