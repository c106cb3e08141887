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

import kernels
from recattn_jax.errors import ConfigError


class TargetAttention(nnx.Module):
    def __init__(self, dim: int, heads: int, *, backend: str = "auto", rngs: nnx.Rngs):
        if dim % heads:
            raise ConfigError(f"model.hidden={dim} is not divisible by model.heads={heads}")
        self.heads, self.head_dim, self.backend = heads, dim // heads, kernels.parse_backend(backend).value
        self.query = nnx.Linear(dim, dim, rngs=rngs)
        self.key = nnx.Linear(dim, dim, rngs=rngs)
        self.value = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(
        self,
        candidates: Float[Array, "B T D"],
        history: Float[Array, "B S D"],
        kv_start: Int[Array, " B"],
        kv_end: Int[Array, " B"],
        *,
        causal: bool = False,
    ) -> Float[Array, "B T D"]:
        b, t, d = candidates.shape
        s = history.shape[1]
        # [B, *, D] -> [B, *, N, H]: split the model dim into heads
        q = self.query(candidates).reshape(b, t, self.heads, self.head_dim)
        k = self.key(history).reshape(b, s, self.heads, self.head_dim)
        v = self.value(history).reshape(b, s, self.heads, self.head_dim)
        o = kernels.attention(q, k, v, kv_start=kv_start, kv_end=kv_end, causal=causal, backend=self.backend)
        return o.reshape(b, t, d)  # merge heads back into D
