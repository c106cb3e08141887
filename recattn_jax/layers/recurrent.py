"""A recurrent encoder (nnx.RNN over an LSTM or GRU cell) for left-padded item sequences.

Each row is rotated so that its items come first (left-aligned), the RNN runs from its zero state,
and the outputs are rotated back. Padding then only follows the items: a recurrence never lets a
later step change an earlier output, so the state at every item is exactly that of the unpadded
sequence. Padded positions are zeroed.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.errors import ConfigError
from recattn_jax.layers.masks import left_padded_bounds

CELLS = {"lstm": nnx.LSTMCell, "gru": nnx.GRUCell}


class RecurrentEncoder(nnx.Module):
    def __init__(self, in_dim: int, dim: int, cell: str, *, rngs: nnx.Rngs):
        if cell not in CELLS:
            raise ConfigError(f"recurrent cell {cell!r}; choose one of {sorted(CELLS)}")
        self.rnn = nnx.RNN(CELLS[cell](in_dim, dim, rngs=rngs))

    def __call__(self, x: Float[Array, "B L E"], seq: Int[Array, "B L"]) -> Float[Array, "B L D"]:
        start = left_padded_bounds(seq)[0]
        length = seq.shape[1]
        pos = jnp.arange(length)
        to_left = (pos[None] + start[:, None]) % length  # row b's item k moves to slot k
        out = self.rnn(jnp.take_along_axis(x, to_left[..., None], axis=1))
        back = (pos[None] - start[:, None]) % length
        out = jnp.take_along_axis(out, back[..., None], axis=1)
        return out * (seq != 0)[..., None]
