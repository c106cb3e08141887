"""Item representation by attention over the item's fields: its ID embedding, its projected TF-IDF
vector and one embedding per category (Σ_f a_f x_f, a = softmax of a learned query . x_f, through
`kernels.attention_pool`). Fields are packed [ID, categories..., TF-IDF]; an item without side
features has the ID field only, so its representation is its ID embedding."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from recattn_jax.features.item_features import ItemFeatures
from recattn_jax.layers.item_rows import ITEM_ROWS
from recattn_jax.layers.pooling import AttentionPooling


class FeatureConstant(nnx.Variable):
    """Side-feature data carried by the model: saved with it, never trained."""


class FieldFusion(nnx.Module):
    def __init__(self, features: ItemFeatures, dim: int, heads: int, *, backend: str, rngs: nnx.Rngs):
        # one row per item, like the ID table they are fused with: a mesh pads and shards them alike
        self.tfidf = FeatureConstant(jnp.asarray(features.tfidf), **ITEM_ROWS)
        self.categories = FeatureConstant(jnp.asarray(features.categories), **ITEM_ROWS)
        self.project = nnx.Linear(max(features.tfidf.shape[1], 1), dim, use_bias=False, rngs=rngs)
        init = nnx.initializers.normal(stddev=dim**-0.5)
        self.category_embedding = nnx.Embed(features.num_categories + 1, dim, embedding_init=init, rngs=rngs)
        self.pooling = AttentionPooling(dim, heads, backend=backend, rngs=rngs)

    def __call__(self, ids: Float[Array, "I D"]) -> Float[Array, "I D"]:
        tfidf = self.tfidf[...]
        if tfidf.shape[1] == 0:  # no vocabulary at all: a zero field
            tfidf = jnp.zeros((tfidf.shape[0], 1), ids.dtype)
        cats = self.categories[...]
        n_cats = jnp.sum(cats != 0, axis=-1).astype(jnp.int32)
        has_text = jnp.any(tfidf != 0, axis=-1)
        # [I, 1 + C + 1, D]: ID, the (left-packed) categories, then the text field in the first free
        # slot, so that every item's valid fields are the contiguous range [0, count)
        fields = jnp.concatenate([ids[:, None], self.category_embedding(cats), jnp.zeros_like(ids[:, None])], axis=1)
        rows = jnp.arange(ids.shape[0])
        text = jnp.where(has_text[:, None], self.project(tfidf), fields[rows, 1 + n_cats])
        fields = fields.at[rows, 1 + n_cats].set(text)
        count = 1 + n_cats + has_text.astype(jnp.int32)
        return self.pooling(fields, jnp.zeros_like(count), count)
