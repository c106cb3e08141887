"""The synthetic generator's large-catalogue paths: a hashed seen set and rejection-drawn sequels."""

import numpy as np

from recattn_jax.data import synthetic
from recattn_jax.data.synthetic import SyntheticSpec, generate_synthetic

SPEC = SyntheticSpec(num_users=200, num_items=300, mean_length=30.0, min_length=5, max_length=200, seed=5)


def test_hashed_seen_gives_byte_identical_output(monkeypatch):
    dense = generate_synthetic(SPEC)
    monkeypatch.setattr(synthetic, "DENSE_SEEN_LIMIT", 0)  # force the hash set
    hashed = generate_synthetic(SPEC)
    for a, b in zip(dense, hashed, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_huge_topics_give_valid_sequences(monkeypatch):
    monkeypatch.setattr(synthetic, "HUGE_TOPIC", 10)  # every topic takes the large-catalogue path
    monkeypatch.setattr(synthetic, "DENSE_SEEN_LIMIT", 0)
    spec = SyntheticSpec(num_users=100, num_items=2000, mean_length=40.0, min_length=5, max_length=300, seed=2)
    users, items = generate_synthetic(spec)
    assert np.all(np.diff(users) >= 0) and set(np.unique(users)) == set(range(1, 101))
    assert items.min() >= 1 and items.max() <= 2000
    bounds = np.searchsorted(users, np.arange(1, 102))
    for u in range(100):
        seq = items[bounds[u] : bounds[u + 1]]
        assert len(np.unique(seq)) == len(seq)  # no item repeats within a user
    assert np.array_equal(generate_synthetic(spec)[1], items)  # deterministic by seed
