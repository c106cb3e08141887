"""Per-item side-feature matrices, indexed like the items (row 0 = padding, all zero)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from recattn_jax.features.text import tfidf


@dataclasses.dataclass(frozen=True)
class ItemFeatures:
    tfidf: np.ndarray  # [I + 1, V] float32: TF-IDF of the item's text and category tokens; zero = none
    categories: np.ndarray  # [I + 1, C] int32: category ids 1..K, left-packed, 0 = none
    category_names: list[str]  # category id k is category_names[k - 1]
    vocabulary: list[str]
    coverage: dict[str, int] = dataclasses.field(default_factory=dict)  # counts of the join with the feature file

    @property
    def num_categories(self) -> int:
        return len(self.category_names)

    def padded(self, rows: int) -> ItemFeatures:
        """The same features with zero rows appended up to `rows` (e.g. for a [mask] token)."""
        extra = rows - len(self.tfidf)
        return dataclasses.replace(
            self,
            tfidf=np.pad(self.tfidf, ((0, extra), (0, 0))),
            categories=np.pad(self.categories, ((0, extra), (0, 0))),
        )


def build_item_features(
    texts: Sequence[str], categories: Sequence[Sequence[str]], *, min_df: int | float = 1
) -> ItemFeatures:
    """Features of items 1..I from their text ("" if none) and category lists ([] if none).

    The TF-IDF document of an item is its text plus its category tokens, so an item with any side
    feature has a non-zero TF-IDF row (the fusion relies on it); an item with none keeps only its ID.
    """
    names = sorted({c for cats in categories for c in cats})
    index = {c: k + 1 for k, c in enumerate(names)}
    pairs = zip(texts, categories, strict=True)
    docs = [" ".join([text, *(c.replace(" ", "_") for c in cats)]) for text, cats in pairs]
    matrix, vocabulary = np.zeros((len(docs), 0), np.float32), []  # no words: the readers say which file
    if any(d.strip() for d in docs):
        try:
            matrix, vocabulary = tfidf(docs, min_df=min_df)
        except ValueError as e:  # scikit-learn's "empty vocabulary" / "no terms remain" (all pruned by min_df)
            if "vocabulary" not in str(e) and "no terms remain" not in str(e):
                raise
    width = max((len(c) for c in categories), default=0)
    cats = np.zeros((len(docs) + 1, max(width, 1)), np.int32)
    for row, item_cats in enumerate(categories, start=1):
        cats[row, : len(item_cats)] = [index[c] for c in item_cats]
    return ItemFeatures(
        tfidf=np.concatenate([np.zeros((1, matrix.shape[1]), np.float32), matrix]),
        categories=cats,
        category_names=names,
        vocabulary=vocabulary,
    )
