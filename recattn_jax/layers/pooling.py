"""Attention pooling of a sequence into one vector: a_i = softmax_i(w . x_i + b), out = sum_i a_i x_i.

The query w is learned, one per head; keys and values are the inputs themselves (k = v = x), and the
weighted sum runs in `kernels.attention_pool`. A scalar bias b is the same for every position of a
row, so it cancels in the softmax: softmax(w . x + b) = softmax(w . x). The layer therefore has no b.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

import kernels
from recattn_jax.errors import ConfigError


class AttentionPooling(nnx.Module):
    def __init__(self, dim: int, heads: int, *, backend: str = "auto", rngs: nnx.Rngs):
        if dim % heads:
            raise ConfigError(f"model.hidden={dim} is not divisible by model.heads={heads}")
        self.heads, self.head_dim, self.backend = heads, dim // heads, kernels.parse_backend(backend).value
        self.query = nnx.Param(nnx.initializers.normal(stddev=dim**-0.5)(rngs.params(), (heads, dim // heads)))

    def _split(self, x: Float[Array, "B S D"]) -> Float[Array, "B S N H"]:
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim)  # [B, S, D] -> [B, S, N, H]: heads split D

    def __call__(
        self, x: Float[Array, "B S D"], kv_start: Int[Array, " B"], kv_end: Int[Array, " B"]
    ) -> Float[Array, "B D"]:
        k = self._split(x)
        q = jnp.broadcast_to(self.query[...], (x.shape[0], self.heads, self.head_dim))
        out = kernels.attention_pool(q, k, k, kv_start=kv_start, kv_end=kv_end, scale=1.0, backend=self.backend)
        return out.reshape(x.shape[0], -1)  # merge heads back into D

    def prefixes(
        self, x: Float[Array, "B S D"], kv_start: Int[Array, " B"], kv_end: Int[Array, " B"]
    ) -> Float[Array, "B S D"]:
        """Row t pools positions ..t only (causal): the pooled vector of every prefix, for training."""
        k = self._split(x)
        q = jnp.broadcast_to(self.query[...], k.shape)  # the same query at every position
        out = kernels.attention(q, k, k, kv_start=kv_start, kv_end=kv_end, causal=True, scale=1.0, backend=self.backend)
        return out.reshape(x.shape)  # merge heads back into D

    def weights(self, x: Float[Array, "B S D"], kv_start: Int[Array, " B"], kv_end: Int[Array, " B"]) -> Array:
        """[B, N, S] attention weights a_i the pooled output applies (for inspection and tests)."""
        logits = jnp.einsum("bsnh,nh->bns", self._split(x), self.query[...])
        pos = jnp.arange(x.shape[1])
        valid = (pos[None] >= kv_start[:, None]) & (pos[None] < kv_end[:, None])
        logits = jnp.where(valid[:, None], logits, -jnp.inf)
        return jnp.where(valid[:, None], jax.nn.softmax(logits, axis=-1), 0.0)
