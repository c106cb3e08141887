"""Documents -> count or TF-IDF matrices with scikit-learn's vectorizers (dense float32)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

TOKEN_PATTERN = r"(?u)\b[\w'=-]+\b"  # keeps tokens such as "children's", "year=1995", "sci-fi"


def bag_of_words(documents: Sequence[str], *, min_df: int | float = 1, binary: bool = False):
    """[documents, vocabulary] term counts (0/1 with `binary`) and the vocabulary, in column order."""
    vectorizer = CountVectorizer(token_pattern=TOKEN_PATTERN, min_df=min_df, binary=binary)
    matrix = vectorizer.fit_transform(documents)
    return np.asarray(matrix.todense(), np.float32), list(vectorizer.get_feature_names_out())


def tfidf(documents: Sequence[str], *, min_df: int | float = 1):
    """[documents, vocabulary] L2-normalised TF-IDF rows (smooth idf) and the vocabulary.

    An empty document (an item without text) gets a zero row."""
    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, min_df=min_df)
    matrix = vectorizer.fit_transform(documents)
    return np.asarray(matrix.todense(), np.float32), list(vectorizer.get_feature_names_out())
