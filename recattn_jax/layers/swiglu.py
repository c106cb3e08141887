"""SwiGLU position-wise feed-forward network (Shazeer 2020): a gated alternative to FeedForward's ReLU."""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.layers.dropout import Dropout


class SwiGLUFeedForward(nnx.Module):
    """down(dropout(silu(gate(x)) * up(x))), no residual; FeedForward's signature, 1.5x its parameters."""

    def __init__(self, dim: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
        self.gate = nnx.Linear(dim, hidden, rngs=rngs)
        self.up = nnx.Linear(dim, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, dim, rngs=rngs)
        self.dropout = Dropout(dropout)

    def __call__(self, x: Float[Array, "B L D"], *, rngs: nnx.Rngs | None = None) -> Float[Array, "B L D"]:
        h = self.dropout(nnx.silu(self.gate(x)) * self.up(x), deterministic=rngs is None, rngs=rngs)
        return self.down(h)
