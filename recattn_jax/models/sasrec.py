"""SASRec (Kang & McAuley 2018): causal self-attention over the behaviour history, tied item scorer
(or, with model.tie_output=false, an output item table of its own; model.normalize: cosine scores)."""

from __future__ import annotations

import math

import jax
from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.errors import ConfigError
from recattn_jax.layers.attention import MultiHeadAttention
from recattn_jax.layers.dropout import Dropout
from recattn_jax.layers.embeddings import ItemTable, SequenceEmbedding
from recattn_jax.layers.l2_normalize import l2_normalize
from recattn_jax.layers.masks import item_mask, left_padded_bounds
from recattn_jax.layers.transformer import TransformerEncoder
from recattn_jax.models import item_embedding, register_model
from recattn_jax.models.interface import Events, ModelKind, Seq, Users

XAVIER = nnx.initializers.xavier_normal()  # as the input item embedding
INITS = ("xavier", "normal", "sasrec_plus")  # model.init; the first is the default
NORMAL_STD = 0.02  # model.init=normal: GPT-2's initializer range, as SASRec+ (Klenitskiy & Vasilev 2023) and RecBole


class SASRec(nnx.Module):
    """`output`: the scorer's item table, None for the input embedding's (tied). `normalize`: hidden states
    and item rows L2-normalised, so that training (scaled by loss.temperature) and ranking use cosines."""

    kind = ModelKind.DOT_PRODUCT

    def __init__(
        self,
        embedding: SequenceEmbedding,
        encoder: TransformerEncoder,
        dropout: float,
        *,
        output: ItemTable | None = None,
        normalize: bool = False,
    ):
        self.embedding = embedding
        self.encoder = encoder
        self.dropout = Dropout(dropout)
        self.output = output
        self.normalize = normalize

    def encode(
        self,
        seq: Seq,
        *,
        events: Events = None,
        users: Users = None,
        rngs: nnx.Rngs | None = None,
        last_only: bool = False,
    ) -> Float[Array, "B L D"]:
        """Hidden state per position; position t sees items 0..t only (causal). `last_only`: [B, 1, D]."""
        del users  # read by the user-features wrapper only
        valid = item_mask(seq)
        kv_start, kv_end = left_padded_bounds(seq)
        x = self.dropout(self.embedding(seq, events), deterministic=rngs is None, rngs=rngs)
        x = x * valid[..., None]
        hidden = self.encoder(x, valid, kv_start, kv_end, causal=True, rngs=rngs, last_only=last_only)
        return l2_normalize(hidden) if self.normalize else hidden

    def item_table(self) -> Float[Array, "I D"]:
        table = self.embedding.table if self.output is None else self.output.table
        return l2_normalize(table) if self.normalize else table

    def user_representation(self, seq: Seq, *, events: Events = None, users: Users = None) -> Float[Array, "B D"]:
        del users  # read by the user-features wrapper only
        # right-aligned: the newest item sits last, and only its state is computed in the last block
        return self.encode(seq, events=events, last_only=True)[:, -1]


@register_model("sasrec", kind=ModelKind.DOT_PRODUCT, item_features=True, user_features=True, events=True)
def build_sasrec(
    config, num_items: int, *, backend: str, rngs: nnx.Rngs, features=None, num_event_types: int = 0
) -> SASRec:
    embedding = item_embedding(
        config, num_items, backend=backend, rngs=rngs, features=features, num_event_types=num_event_types
    )
    encoder = TransformerEncoder(
        config.hidden,
        config.heads,
        config.blocks,
        config.dropout,
        config.layer_norm,
        backend,
        rngs=rngs,
        ffn=config.ffn,
        residual=config.residual,
        ffn_mult=config.ffn_mult,
        attn_dropout=config.attn_dropout,
    )
    # an [I+1, D] item-row table (the mesh shards it over `model`), drawn after every tied parameter
    output = None if config.tie_output else ItemTable(num_items + 1, config.hidden, XAVIER, rngs=rngs)
    model = SASRec(embedding, encoder, config.dropout, output=output, normalize=config.normalize)
    if config.init not in INITS:
        raise ConfigError(f"model.init={config.init!r}; choose one of {list(INITS)}")
    if config.init in ("normal", "sasrec_plus"):
        normal_init(model, rngs, torch_attention=config.init == "sasrec_plus")
    return model


def normal_init(model: nnx.Module, rngs: nnx.Rngs, *, torch_attention: bool = False) -> None:
    """Redraw every embedding table and every linear kernel but the attention's query, key and value
    projections from N(0, NORMAL_STD^2), in the model's graph order (biases and layer norms keep their zeros
    and ones): a residual stream that starts close to the embeddings, as GPT-2-style code initialises it.

    `torch_attention` (model.init=sasrec_plus): the query, key and value kernels are redrawn too, as
    torch.nn.MultiheadAttention draws its packed [3D, D] in-projection, which SASRec+'s code leaves as torch made
    it: one Xavier-uniform matrix, U(-a, a) with a = sqrt(6 / (D + 3D)) (std 0.088 at D = 64, where the default
    LeCun-normal kernels have 0.125). With this, every parameter is drawn from the distribution SASRec+'s code
    draws it from (but the padding row, which it zeroes and which never scores here)."""
    attentions = [module for _, module in nnx.iter_graph(model) if isinstance(module, MultiHeadAttention)]
    qkv = {id(layer) for module in attentions for layer in (module.query, module.key, module.value)}
    for _, module in nnx.iter_graph(model):
        if isinstance(module, nnx.Embed):
            weight = module.embedding
        elif isinstance(module, nnx.Linear) and id(module) not in qkv:
            weight = module.kernel
        else:
            continue
        weight[...] = NORMAL_STD * jax.random.normal(rngs.params(), weight.shape, weight.dtype)
    if torch_attention:
        for module in attentions:
            d_in, d_out = module.query.kernel.shape
            bound = math.sqrt(6.0 / (d_in + 3 * d_out))  # fans of the packed [3 * d_out, d_in] matrix
            for layer in (module.query, module.key, module.value):
                kernel = layer.kernel
                kernel[...] = jax.random.uniform(rngs.params(), kernel.shape, kernel.dtype, -bound, bound)
