"""Ranking metrics from the 0-based rank of each user's target among its candidates.

Ties count against the target (rank = number of other candidates scoring >= the target), so a
model that scores everything equally gets no credit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10, 20)) -> dict[str, float]:
    """HR@K, NDCG@K for each K and MRR (no cut-off), averaged over users."""
    ranks = np.asarray(ranks, np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to average: the evaluation has no users")
    return {name: float(values.mean()) for name, values in user_metrics(ranks, ks).items()}


def user_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10, 20)) -> dict[str, np.ndarray]:
    """Each user's HR@K, NDCG@K and MRR (float64 arrays [U]): sums of these add up across processes."""
    ranks = np.asarray(ranks, np.float64)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = hit.astype(np.float64)
        out[f"NDCG@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    out["MRR"] = 1.0 / (ranks + 1.0)
    return out
