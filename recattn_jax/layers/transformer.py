"""Transformer encoder blocks over item sequences, with SASRec's or pre-LN layer-norm placement and plain or
gated residual branches."""

from __future__ import annotations

import jax
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.errors import ConfigError
from recattn_jax.layers.attention import MultiHeadAttention
from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.feed_forward import FeedForward
from recattn_jax.layers.swiglu import SwiGLUFeedForward

LAYER_NORM_PLACEMENTS = ("sasrec", "pre")
FEED_FORWARDS = {"relu": FeedForward, "swiglu": SwiGLUFeedForward}  # model.ffn
RESIDUALS = ("plain", "gated")  # model.residual; the first is the default
ATTENTION_DROPOUTS = ("output", "weights")  # model.attn_dropout: where dropout acts in the attention branch


class TransformerBlock(nnx.Module):
    """One self-attention + feed-forward block.

    `sasrec` (Kang & McAuley 2018): the queries are normalised, keys and values are not, and the
    residual adds the normalised queries; then x = LN(x) + FFN(LN(x)). `pre`: x += Attn(LN(x));
    x += FFN(LN(x)). Dropout acts inside/after the feed-forward network and, in the attention branch,
    where `attn_dropout` says: on its output (`output`, the default; the fused Triton kernels have no
    dropout) or on its softmax weights (`weights`, as SASRec's own code and torch.nn.MultiheadAttention's
    `dropout`, which the SASRec.pytorch and SASRec+ code use; it runs on the xla / reference backends).

    `residual="gated"`: each branch's output (after its dropout) is scaled elementwise by
    sigmoid(s W + b), s being the residual stream the branch is added to, with W, b a [D, D] linear
    layer per branch: the block learns per feature how much of each branch enters the stream. With
    `pre` this is LiGR's layer (eSASRec, Tikhonov et al. 2025): x += σ(x W1 + b1) ⊙ Attn(LN(x));
    x += σ(x W2 + b2) ⊙ FFN(LN(x)). With `sasrec` the stream of the attention branch is the
    normalised queries, to which SASRec adds it.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float,
        layer_norm: str,
        backend: str,
        *,
        rngs: nnx.Rngs,
        ffn: str = "relu",
        residual: str = "plain",
        ffn_mult: int = 1,
        attn_dropout: str = "output",
    ):
        if layer_norm not in LAYER_NORM_PLACEMENTS:
            raise ConfigError(f"model.layer_norm={layer_norm!r}; choose one of {LAYER_NORM_PLACEMENTS}")
        if ffn not in FEED_FORWARDS:
            raise ConfigError(f"model.ffn={ffn!r}; choose one of {list(FEED_FORWARDS)}")
        if residual not in RESIDUALS:
            raise ConfigError(f"model.residual={residual!r}; choose one of {list(RESIDUALS)}")
        if attn_dropout not in ATTENTION_DROPOUTS:
            raise ConfigError(f"model.attn_dropout={attn_dropout!r}; choose one of {list(ATTENTION_DROPOUTS)}")
        if ffn_mult < 1:
            raise ConfigError(f"model.ffn_mult={ffn_mult}; the feed-forward's inner width is ffn_mult x hidden, >= 1")
        self.layer_norm = layer_norm
        self.attn_norm = nnx.LayerNorm(dim, epsilon=1e-8, rngs=rngs)
        on_weights = attn_dropout == "weights"
        self.attention = MultiHeadAttention(
            dim, heads, backend=backend, dropout=dropout if on_weights else 0.0, rngs=rngs
        )
        self.ffn_norm = nnx.LayerNorm(dim, epsilon=1e-8, rngs=rngs)
        self.ffn = FEED_FORWARDS[ffn](dim, ffn_mult * dim, dropout, rngs=rngs)
        self.dropout = Dropout(dropout)
        self.attn_out_dropout = Dropout(0.0 if on_weights else dropout)
        # drawn after every plain-block parameter, so that the default draws what it drew before
        gated = residual == "gated"
        self.attn_gate = nnx.Linear(dim, dim, rngs=rngs) if gated else None
        self.ffn_gate = nnx.Linear(dim, dim, rngs=rngs) if gated else None

    def _branch(
        self, gate: nnx.Linear | None, stream: Array, out: Array, dropout: Dropout, det: bool, rngs: nnx.Rngs | None
    ) -> Array:
        """What a branch adds to the residual `stream`: its dropped-out output, gated by the stream if gated."""
        out = dropout(out, deterministic=det, rngs=rngs)
        return out if gate is None else jax.nn.sigmoid(gate(stream)) * out

    def __call__(
        self,
        x: Float[Array, "B L D"],
        kv_start: Int[Array, " B"],
        kv_end: Int[Array, " B"],
        *,
        causal: bool,
        rngs: nnx.Rngs | None = None,
        last_only: bool = False,
    ) -> Float[Array, "B L D"]:
        """`last_only`: compute the last position only ([B, 1, D] out; all positions stay keys and values)."""
        det = rngs is None
        # the last query sees every key in [kv_start, kv_end), so causality needs no mask there
        query = (lambda t: t[:, -1:]) if last_only else (lambda t: t)
        causal = causal and not last_only
        if self.layer_norm == "sasrec":
            q = self.attn_norm(query(x))
            keys = x  # SASRec normalises the queries only
            a = self.attention(q, keys, kv_start=kv_start, kv_end=kv_end, causal=causal, rngs=rngs)
            x = self.ffn_norm(q + self._branch(self.attn_gate, q, a, self.attn_out_dropout, det, rngs))
        else:
            h = self.attn_norm(x)
            a = self.attention(query(h), h, kv_start=kv_start, kv_end=kv_end, causal=causal, rngs=rngs)
            x = query(x) + self._branch(self.attn_gate, query(x), a, self.attn_out_dropout, det, rngs)
        f = self.ffn(x if self.layer_norm == "sasrec" else self.ffn_norm(x), rngs=rngs)
        return x + self._branch(self.ffn_gate, x, f, self.dropout, det, rngs)


class TransformerEncoder(nnx.Module):
    """A stack of blocks and a final layer norm; padded positions are zeroed between blocks."""

    def __init__(
        self,
        dim: int,
        heads: int,
        blocks: int,
        dropout: float,
        layer_norm: str,
        backend: str,
        *,
        rngs: nnx.Rngs,
        ffn: str = "relu",
        residual: str = "plain",
        ffn_mult: int = 1,
        attn_dropout: str = "output",
    ):
        """`ffn`, `residual`, `ffn_mult`, `attn_dropout`: each block's (TransformerBlock)."""
        self.blocks = nnx.List(
            [
                TransformerBlock(
                    dim,
                    heads,
                    dropout,
                    layer_norm,
                    backend,
                    rngs=rngs,
                    ffn=ffn,
                    residual=residual,
                    ffn_mult=ffn_mult,
                    attn_dropout=attn_dropout,
                )
                for _ in range(blocks)
            ]
        )
        self.final_norm = nnx.LayerNorm(dim, epsilon=1e-8, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "B L D"],
        valid: Array,
        kv_start: Int[Array, " B"],
        kv_end: Int[Array, " B"],
        *,
        causal: bool,
        rngs: nnx.Rngs | None = None,
        last_only: bool = False,
    ) -> Float[Array, "B L D"]:
        """`last_only`: the last position's state only, [B, 1, D] (scoring a user needs no other; the last
        block then projects keys and values of every position but runs its query and FFN on one)."""
        keep = valid[..., None].astype(x.dtype)
        for i, block in enumerate(self.blocks):
            last = last_only and i == len(self.blocks) - 1
            x = block(x, kv_start, kv_end, causal=causal, rngs=rngs, last_only=last) * (keep[:, -1:] if last else keep)
        return self.final_norm(x)
