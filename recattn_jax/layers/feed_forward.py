"""Position-wise feed-forward network of a Transformer block."""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout


class FeedForward(nnx.Module):
    """Linear -> ReLU -> dropout -> Linear (SASRec's two 1x1 convolutions), no residual."""

    def __init__(self, dim: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
        self.inner = nnx.Linear(dim, hidden, rngs=rngs)
        self.outer = nnx.Linear(hidden, dim, rngs=rngs)
        self.dropout = Dropout(dropout)

    def __call__(self, x: Float[Array, "B L D"], *, rngs: nnx.Rngs | None = None) -> Float[Array, "B L D"]:
        h = self.dropout(nnx.relu(self.inner(x)), deterministic=rngs is None, rngs=rngs)
        return self.outer(h)
