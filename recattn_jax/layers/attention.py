"""Multi-head attention block whose score -> softmax -> weighted sum runs in `kernels.attention`."""

from __future__ import annotations

from flax import nnx
from jaxtyping import Array, Float, Int

import kernels
from recattn_jax.errors import ConfigError


class MultiHeadAttention(nnx.Module):
    """Projections around the fused attention op; the op picks its backend (`kernel.backend`)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        backend: str = "auto",
        out_projection: bool = True,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        """`dropout`: on the attention weights, in training (calls given `rngs`); see `kernels.attention`."""
        if dim % heads:
            raise ConfigError(f"model.hidden={dim} is not divisible by model.heads={heads}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"attention dropout on the weights: rate {dropout} (model.dropout) must be in [0, 1)")
        self.heads, self.head_dim, self.backend = heads, dim // heads, kernels.parse_backend(backend).value
        self.dropout = dropout
        self.query = nnx.Linear(dim, dim, rngs=rngs)
        self.key = nnx.Linear(dim, dim, rngs=rngs)
        self.value = nnx.Linear(dim, dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs) if out_projection else None

    def __call__(
        self,
        x_q: Float[Array, "B T D"],
        x_kv: Float[Array, "B S D"],
        *,
        kv_start: Int[Array, " B"] | None = None,
        kv_end: Int[Array, " B"] | None = None,
        causal: bool = False,
        rngs: nnx.Rngs | None = None,
    ) -> Float[Array, "B T D"]:
        b, t, d = x_q.shape
        s = x_kv.shape[1]
        # [B, T, D] -> [B, T, N, H]: split the model dim into heads
        q = self.query(x_q).reshape(b, t, self.heads, self.head_dim)
        k = self.key(x_kv).reshape(b, s, self.heads, self.head_dim)
        v = self.value(x_kv).reshape(b, s, self.heads, self.head_dim)
        key = rngs.dropout() if rngs is not None and self.dropout > 0.0 else None
        o = kernels.attention(
            q,
            k,
            v,
            kv_start=kv_start,
            kv_end=kv_end,
            causal=causal,
            backend=self.backend,
            dropout_rate=self.dropout,
            dropout_key=key,
        )
        o = o.reshape(b, t, d)  # merge heads back into D
        return o if self.out is None else self.out(o)
