"""Target attention (DIN, Zhou et al. 2018): the candidate item is the query over the history.

interest(c) = sum_j softmax_j(W_q e_c . W_k x_j) W_v x_j through `kernels.attention` with the T
candidates of a row as its queries (non-causal: every candidate sees the whole history), or with one
candidate per position and `causal=True` (position t's candidate sees the prefix ..t, for training).
The paper's attention unit is an MLP over (e_c, x_j, e_c - x_j, e_c * x_j) without normalisation; a
projected dot product with softmax is used instead so that it runs in the fused kernel.
"""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.layers.attention import MultiHeadAttention


class TargetAttention(nnx.Module):
    """Query/key/value projections and the fused attention, without an output projection."""

    def __init__(self, dim: int, heads: int, *, backend: str = "auto", rngs: nnx.Rngs):
        self.attention = MultiHeadAttention(dim, heads, backend=backend, out_projection=False, rngs=rngs)

    def __call__(
        self,
        candidates: Float[Array, "B T D"],
        history: Float[Array, "B S D"],
        kv_start: Int[Array, " B"],
        kv_end: Int[Array, " B"],
        *,
        causal: bool = False,
    ) -> Float[Array, "B T D"]:
        return self.attention(candidates, history, kv_start=kv_start, kv_end=kv_end, causal=causal)
