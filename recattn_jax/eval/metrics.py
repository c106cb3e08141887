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
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["MRR"] = float((1.0 / (ranks + 1.0)).mean())
    return out
