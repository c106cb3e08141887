"""Tests of the embedded synthetic data generator (recattn_jax.data.synthetic)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from recattn_jax.data.synthetic import SyntheticSpec, generate_synthetic

SMALL = SyntheticSpec(num_users=300, num_items=400, mean_length=40.0, min_length=5, max_length=300, seed=3)
# Leave-one-out benchmark spec: small enough to generate and evaluate in about a second.
SIGNAL = SyntheticSpec(num_users=1500, num_items=800, mean_length=60.0, min_length=10, max_length=500, seed=1)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return generate_synthetic(SMALL)


@pytest.fixture(scope="module")
def signal() -> tuple[np.ndarray, np.ndarray]:
    return generate_synthetic(SIGNAL)


def split_users(users: np.ndarray, items: np.ndarray, num_users: int) -> list[np.ndarray]:
    bounds = np.searchsorted(users, np.arange(1, num_users + 2))
    return [items[bounds[u] : bounds[u + 1]] for u in range(num_users)]


def leave_one_out_hr(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, k: int = 10):
    """HR@k of (first-order Markov, most-popular, random) with each user's last item as the target.

    All three rank only items unseen in the history. Markov scores items by the transition counts
    (from all histories) out of the last history item, ties broken by popularity.
    """
    seqs = split_users(users, items, num_users)
    hist = [s[:-1] for s in seqs]
    targets = np.array([s[-1] for s in seqs])
    last = np.array([h[-1] for h in hist])
    pop = np.bincount(np.concatenate(hist), minlength=num_items + 1).astype(np.float64)
    trans = np.zeros((num_items + 1, num_items + 1))
    src = np.concatenate([h[:-1] for h in hist])
    dst = np.concatenate([h[1:] for h in hist])
    np.add.at(trans, (src, dst), 1.0)
    seen = np.zeros((num_users, num_items + 1), dtype=bool)
    seen[np.repeat(np.arange(num_users), [h.size for h in hist]), np.concatenate(hist)] = True
    seen[:, 0] = True
    tie = pop / (pop.max() + 1.0)  # < 1: only breaks ties between equal transition counts

    def hit_rate(scores: np.ndarray) -> float:
        scores = np.where(seen, -np.inf, scores)
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        return float((top == targets[:, None]).any(axis=1).mean())

    markov = hit_rate(trans[last] + tie[None, :])
    popular = hit_rate(np.broadcast_to(pop, seen.shape))
    random = float(np.mean(k / (num_items - seen[:, 1:].sum(axis=1))))  # expected HR of a random ranking
    return markov, popular, random


def test_deterministic_and_seed_sensitive(small):
    users, items = small
    users2, items2 = generate_synthetic(SMALL)
    assert users.tobytes() == users2.tobytes() and items.tobytes() == items2.tobytes()
    users3, items3 = generate_synthetic(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert users.size != users3.size or not np.array_equal(items, items3)


def test_layout_ids_order_and_no_repeats(small):
    users, items = small
    spec = SMALL
    assert users.dtype == np.int64 and items.dtype == np.int64
    assert users.shape == items.shape and users.ndim == 1
    assert np.all(np.diff(users) >= 0)  # grouped by user, in user order
    assert np.array_equal(np.unique(users), np.arange(1, spec.num_users + 1))
    assert items.min() >= 1 and items.max() <= spec.num_items
    lengths = np.bincount(users)[1:]
    assert lengths.min() >= spec.min_length and lengths.max() <= spec.max_length
    for seq in split_users(users, items, spec.num_users):
        assert np.unique(seq).size == seq.size


def test_mean_length_roughly_as_asked():
    spec = SyntheticSpec(num_users=2000, num_items=500, mean_length=50.0, min_length=5, max_length=400)
    users, _ = generate_synthetic(spec)
    assert abs(users.size / spec.num_users - spec.mean_length) < 0.1 * spec.mean_length
    fixed = dataclasses.replace(spec, num_users=50, length_sigma=0.0)
    assert np.all(np.bincount(generate_synthetic(fixed)[0])[1:] == 50)


def test_popularity_is_power_law(signal):
    _, items = signal
    counts = np.sort(np.bincount(items, minlength=SIGNAL.num_items + 1)[1:])[::-1]
    top_share = counts[: SIGNAL.num_items // 10].sum() / counts.sum()
    assert top_share > 0.25  # uniform popularity would give about 0.1
    flat = dataclasses.replace(SIGNAL, num_users=300, zipf_exponent=0.0, p_sequential=0.0)
    flat_counts = np.sort(np.bincount(generate_synthetic(flat)[1], minlength=SIGNAL.num_items + 1)[1:])
    assert flat_counts[::-1][: SIGNAL.num_items // 10].sum() / flat_counts.sum() < top_share


def test_sequence_model_beats_popularity_beats_random(signal):
    users, items = signal
    markov, popular, random = leave_one_out_hr(users, items, SIGNAL.num_users, SIGNAL.num_items)
    assert markov >= 2.0 * popular, (markov, popular, random)
    assert popular >= 2.0 * random, (markov, popular, random)


def test_no_sequential_signal_without_sequels():
    spec = dataclasses.replace(SIGNAL, num_users=800, p_sequential=0.0)
    users, items = generate_synthetic(spec)
    markov, popular, _ = leave_one_out_hr(users, items, spec.num_users, spec.num_items)
    assert markov < 1.5 * popular + 0.02


def test_taste_exhaustion_falls_back_to_any_unseen_item():
    # One topic per user in practice, lengths far beyond a topic's size: must still be repeat-free.
    spec = SyntheticSpec(
        num_users=50,
        num_items=100,
        mean_length=90.0,
        min_length=90,
        max_length=99,
        num_topics=10,
        topic_concentration=0.01,
        p_sequential=0.3,
    )
    users, items = generate_synthetic(spec)
    for seq in split_users(users, items, spec.num_users):
        assert np.unique(seq).size == seq.size and seq.size >= 90


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_users", 0),
        ("num_items", -1),
        ("num_topics", 0),
        ("num_topics", 10_000),
        ("min_length", 0),
        ("max_length", 5),
        ("max_length", 3416),
        ("mean_length", 10.0),
        ("mean_length", 5000.0),
        ("zipf_exponent", -0.5),
        ("p_sequential", 1.5),
        ("p_sequential", -0.1),
        ("topic_concentration", 0.0),
        ("num_successors", 0),
        ("successor_decay", 0.0),
        ("length_sigma", -1.0),
    ],
)
def test_spec_validation(field, value):
    with pytest.raises(ValueError, match=rf"{field}={value!r}"):
        generate_synthetic(dataclasses.replace(SyntheticSpec(), **{field: value}))


@settings(max_examples=examples(25), deadline=None)
@given(
    num_users=st.integers(1, 40),
    num_items=st.integers(2, 60),
    num_topics=st.integers(1, 8),
    p_sequential=st.floats(0.0, 1.0),
    zipf_exponent=st.floats(0.0, 2.5),
    topic_concentration=st.floats(1e-3, 5.0),
    num_successors=st.integers(1, 5),
    length_sigma=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_invariants_on_random_small_specs(
    num_users,
    num_items,
    num_topics,
    p_sequential,
    zipf_exponent,
    topic_concentration,
    num_successors,
    length_sigma,
    seed,
    data,
):
    max_length = data.draw(st.integers(1, num_items - 1), label="max_length")
    min_length = data.draw(st.integers(1, max_length), label="min_length")
    mean_length = data.draw(st.floats(min_length, max_length), label="mean_length")
    spec = SyntheticSpec(
        num_users=num_users,
        num_items=num_items,
        mean_length=mean_length,
        min_length=min_length,
        max_length=max_length,
        length_sigma=length_sigma,
        num_topics=min(num_topics, num_items),
        topic_concentration=topic_concentration,
        zipf_exponent=zipf_exponent,
        p_sequential=p_sequential,
        num_successors=num_successors,
        seed=seed,
    )
    users, items = generate_synthetic(spec)
    assert users.dtype == items.dtype == np.int64 and users.shape == items.shape
    assert np.array_equal(np.unique(users), np.arange(1, num_users + 1)) and np.all(np.diff(users) >= 0)
    assert items.min() >= 1 and items.max() <= num_items
    lengths = np.bincount(users)[1:]
    assert lengths.min() >= min_length and lengths.max() <= max_length
    for seq in split_users(users, items, num_users):
        assert np.unique(seq).size == seq.size
