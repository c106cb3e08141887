"""Embedded synthetic interaction data: an ML-1M-sized stand-in with popularity, taste and sequels.

Generative story (all draws from one ``np.random.default_rng(spec.seed)``):

1. Items 1..I get a Zipf popularity ``1 / rank**zipf_exponent`` (ranks randomly permuted over ids)
   and are dealt evenly, at random, into ``num_topics`` topics.
2. Each item gets ``num_successors`` "sequels": distinct other items of its topic drawn by popularity
   (so popular items are the sequel of many), the k-th weighted ``successor_decay**k``.
3. Each user draws a sparse long-term taste ``theta ~ Dirichlet(topic_concentration)`` over topics
   and a log-normal sequence length, clipped to [min_length, max_length], with mean ``mean_length``.
4. Step by step, with probability ``p_sequential`` the next item is an unseen successor of the
   previous item (short-range dependency); otherwise (or when every successor has been seen) a topic
   is drawn from ``theta`` and an unseen item from that topic by popularity. Topics the user has
   exhausted are skipped; if the taste is exhausted altogether, any unseen topic (hence any unseen
   item) is used. Items never repeat within a user, as in ML-1M.

A first-order sequence model can thus predict the sequel-driven half of the next items, which
global popularity cannot. Generation is vectorised across users (one Python loop over time steps).

Scale: memory is O(interactions + items) beyond ML-1M size. The seen (user, item) pairs are a dense
[U, I+1] matrix up to DENSE_SEEN_LIMIT cells and an open-addressing hash set beyond (same answers,
so the same output); output is written ragged, not as [U, max_length]. Topics larger than HUGE_TOPIC
items (about 1M-item catalogues) draw sequels and items by rejection instead of over all members:
the same distributions, another random stream. Below those sizes output is byte-identical to before.
100k users x 1M items: see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["SyntheticSpec", "generate_synthetic", "generate_synthetic_with_sequels"]


@dataclasses.dataclass  # not frozen: the config schema `data.synthetic` extends it (recattn_jax/config.py)
class SyntheticSpec:
    """Size and shape of the synthetic data set (the defaults give about 1M ML-1M-like interactions).

    num_users, num_items: U users with ids 1..U, I items with ids 1..I.
    mean_length: target mean number of interactions per user (after clipping).
    min_length, max_length: bounds on a user's sequence length; max_length < num_items.
    length_sigma: log-normal sigma of the sequence lengths (0 gives equal lengths).
    num_topics: number of topics (genres / series clusters) items are dealt into.
    topic_concentration: Dirichlet concentration of the users' taste; small means few topics each.
    zipf_exponent: power-law exponent of item popularity (0 gives uniform popularity).
    p_sequential: chance the next item is a sequel of the previous one (short-range dependency).
    num_successors: sequels per item (fixed other items of its topic, drawn by popularity).
    successor_decay: relative weight of the k-th sequel is successor_decay**k, in (0, 1].
    seed: seed of ``np.random.default_rng``; the same spec always gives byte-identical data.
    """

    num_users: int = 6040
    num_items: int = 3416
    mean_length: float = 165.0
    min_length: int = 20
    max_length: int = 2000
    length_sigma: float = 1.0
    num_topics: int = 20
    topic_concentration: float = 0.5
    zipf_exponent: float = 1.0
    p_sequential: float = 0.5
    num_successors: int = 3
    successor_decay: float = 0.5
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and its value."""

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"SyntheticSpec.{name}={getattr(self, name)!r}: {why}")

        for name in ("num_users", "num_items", "num_topics", "min_length", "num_successors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise bad(name, "must be a positive integer")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, (int, np.integer)):
            raise bad("max_length", "must be an integer")
        if self.max_length < self.min_length:
            raise bad("max_length", f"must be >= min_length={self.min_length}")
        if self.max_length >= self.num_items:
            raise bad("max_length", f"must be < num_items={self.num_items} (no repeated items)")
        if self.num_topics > self.num_items:
            raise bad("num_topics", f"must be <= num_items={self.num_items}")
        if not (self.min_length <= self.mean_length <= self.max_length):
            raise bad("mean_length", f"must lie in [min_length, max_length]=[{self.min_length}, {self.max_length}]")
        if not (math.isfinite(self.length_sigma) and self.length_sigma >= 0):
            raise bad("length_sigma", "must be finite and >= 0")
        if not (math.isfinite(self.topic_concentration) and self.topic_concentration > 0):
            raise bad("topic_concentration", "must be finite and > 0")
        if not (math.isfinite(self.zipf_exponent) and self.zipf_exponent >= 0):
            raise bad("zipf_exponent", "must be finite and >= 0")
        if not (0.0 <= self.p_sequential <= 1.0):
            raise bad("p_sequential", "must lie in [0, 1]")
        if not (0.0 < self.successor_decay <= 1.0):
            raise bad("successor_decay", "must lie in (0, 1]")


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _clipped_lognormal_mean(mu: float, sigma: float, lo: float, hi: float) -> float:
    """E[clip(exp(mu + sigma * Z), lo, hi)] for Z standard normal."""
    a, b = (math.log(lo) - mu) / sigma, (math.log(hi) - mu) / sigma
    middle = math.exp(mu + sigma * sigma / 2) * (_normal_cdf(b - sigma) - _normal_cdf(a - sigma))
    return lo * _normal_cdf(a) + hi * (1.0 - _normal_cdf(b)) + middle


def _sample_lengths(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    lo, hi, sigma = spec.min_length, spec.max_length, spec.length_sigma
    if sigma == 0 or lo == hi:
        return np.full(spec.num_users, min(max(round(spec.mean_length), lo), hi), dtype=np.int64)
    # Bisection on mu so that the clipped log-normal has the requested mean (monotone in mu).
    left, right = math.log(lo) - 10 * sigma, math.log(hi) + 10 * sigma
    for _ in range(200):
        mid = 0.5 * (left + right)
        if _clipped_lognormal_mean(mid, sigma, lo, hi) < spec.mean_length:
            left = mid
        else:
            right = mid
    raw = np.exp(0.5 * (left + right) + sigma * rng.standard_normal(spec.num_users))
    return np.clip(np.rint(raw), lo, hi).astype(np.int64)


def _weighted_choice(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise categorical draw from non-negative [n, k] weights (each row with positive sum)."""
    cum = np.cumsum(weights, axis=1)
    target = rng.random(weights.shape[0]) * cum[:, -1]
    idx = (cum <= target[:, None]).sum(axis=1)
    # Guard against target rounding up to the total: never return a trailing zero-weight index.
    last_positive = weights.shape[1] - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    return np.minimum(idx, last_positive)


DENSE_SEEN_LIMIT = 2**28  # U x (I+1) cells: a dense bool matrix up to 256 MB, a hash set of pairs beyond
HUGE_TOPIC = 20_000  # larger topics: sequels by rejection (not Gumbel top-k), more rejection draws per step


class _DenseSeen:
    """(user, item) pairs seen so far as a dense [U, I+1] bool matrix (item 0, padding, counts as seen)."""

    def __init__(self, num_users: int, num_items: int, num_pairs: int):
        del num_pairs
        self.matrix = np.zeros((num_users, num_items + 1), dtype=bool)
        self.matrix[:, 0] = True

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.matrix[users, items]

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        self.matrix[users, items] = True


class _HashedSeen:
    """The same set as an open-addressing hash table of keys user * (I+1) + item: memory O(interactions)."""

    def __init__(self, num_users: int, num_items: int, num_pairs: int):
        capacity = 1 << max(4, int(2 * num_pairs - 1).bit_length())  # load factor <= 1/2
        self.keys = np.full(capacity, -1, dtype=np.int64)
        self.stride = num_items + 1
        self.shift = np.uint64(64 - (capacity.bit_length() - 1))

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        mixed = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing (wraps mod 2**64)
        return (mixed >> self.shift).astype(np.int64)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users, items = np.broadcast_arrays(users, items)
        keys = (users * self.stride + items).ravel()
        found = (items == 0).ravel()  # padding is never drawn
        slot = self._slots(keys)
        pending = np.flatnonzero(~found)
        mask = self.keys.size - 1
        while pending.size:
            stored = self.keys[slot[pending]]
            hit = stored == keys[pending]
            found[pending[hit]] = True
            pending = pending[~hit & (stored != -1)]  # neither found nor an empty slot: probe on
            slot[pending] = (slot[pending] + 1) & mask
        return found.reshape(users.shape)

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        keys = users * self.stride + items  # distinct: users are distinct within a step
        slot = self._slots(keys)
        mask = self.keys.size - 1
        pending = np.arange(keys.size)
        while pending.size:
            free = self.keys[slot[pending]] == -1
            self.keys[slot[pending[free]]] = keys[pending[free]]  # colliding writers: one wins, the rest probe on
            placed = self.keys[slot[pending]] == keys[pending]
            pending = pending[~placed]
            slot[pending] = (slot[pending] + 1) & mask


def _seen_set(num_users: int, num_items: int, num_pairs: int):
    dense = num_users * (num_items + 1) <= DENSE_SEEN_LIMIT
    return (_DenseSeen if dense else _HashedSeen)(num_users, num_items, num_pairs)


def _sequels_by_rejection(members, popularity, k, rng) -> np.ndarray:
    """[m, k] distinct other members per member, drawn by popularity without replacement, first drawn first.

    The same distribution as the Gumbel top-k draw, in O(m k) draws instead of O(m^2): for huge topics.
    """
    cdf = np.cumsum(popularity[members])
    cdf /= cdf[-1]
    chosen = np.zeros((members.size, k), dtype=np.int64)  # member indices + 1; 0 = not yet drawn
    for j in range(k):
        pending = np.arange(members.size)
        while pending.size:
            draw = np.minimum(np.searchsorted(cdf, rng.random(pending.size), side="right"), members.size - 1)
            ok = (draw != pending) & ~(chosen[pending, :j] == draw[:, None] + 1).any(axis=1)
            chosen[pending[ok], j] = draw[ok] + 1
            pending = pending[~ok]
    return members[chosen - 1]


def generate_synthetic(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Generate interactions for ``spec``.

    Returns ``users, items``: int64 arrays of equal length, grouped by user (users 1..U in order,
    every user present), each user's items in chronological order, item ids in 1..I, and no item
    repeated within a user.
    """
    users, items, _ = generate_synthetic_with_sequels(spec)
    return users, items


def generate_synthetic_with_sequels(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``users, items`` as generate_synthetic, and a bool array: whether each item was drawn as a sequel
    of the user's previous item (step 4's short-range branch). The same random stream, the same data."""
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    n_users, n_items, n_topics = spec.num_users, spec.num_items, spec.num_topics

    # --- items: popularity, topics, topic members and successors (index 0 is padding) ---
    popularity = np.zeros(n_items + 1)
    popularity[1:] = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** spec.zipf_exponent
    popularity[1:] = popularity[1:][rng.permutation(n_items)]
    item_topic = np.zeros(n_items + 1, dtype=np.int64)
    item_topic[1:] = rng.permutation(np.arange(n_items) % n_topics)
    topic_size = np.bincount(item_topic[1:], minlength=n_topics)
    max_topic = int(topic_size.max())
    topic_items = np.zeros((n_topics, max_topic), dtype=np.int64)  # 0 pads short topics
    successors = np.zeros((n_items + 1, spec.num_successors), dtype=np.int64)  # 0: no successor
    for t in range(n_topics):
        members = rng.permutation(np.flatnonzero(item_topic[1:] == t) + 1)
        topic_items[t, : members.size] = members
        k = min(spec.num_successors, members.size - 1)
        if k == 0:
            continue
        # Sequels: k distinct other items of the topic drawn by popularity (Gumbel top-k), strongest first.
        if members.size > HUGE_TOPIC:
            successors[members, :k] = _sequels_by_rejection(members, popularity, k, rng)
            continue
        log_pop = np.log(popularity[members])
        for first in range(0, members.size, 1024):  # bounded [rows, m] blocks for huge topics
            rows = np.arange(first, min(first + 1024, members.size))
            keys = log_pop[None, :] + rng.gumbel(size=(rows.size, members.size))
            keys[np.arange(rows.size), rows] = -np.inf  # never one's own sequel
            top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
            successors[members[rows], :k] = members[top]
    topic_pop = popularity[topic_items]  # padding has weight 0
    topic_pop_cdf = np.cumsum(topic_pop, axis=1) / topic_pop.sum(axis=1, keepdims=True)
    successor_weight = spec.successor_decay ** np.arange(spec.num_successors, dtype=np.float64)

    # --- users: taste and length ---
    taste = np.nan_to_num(rng.dirichlet(np.full(n_topics, spec.topic_concentration), size=n_users))
    lengths = _sample_lengths(spec, rng)
    max_len = int(lengths.max())

    seen = _seen_set(n_users, n_items, int(lengths.sum()))  # padding id 0 counts as seen: never drawn
    remaining = np.broadcast_to(topic_size, (n_users, n_topics)).copy()
    # ragged output: user u's items at start[u] .. start[u] + lengths[u] - 1, users in order
    out = np.zeros(int(lengths.sum()), dtype=np.int32 if n_items < 2**31 - 1 else np.int64)
    from_sequel = np.zeros(out.size, dtype=bool)
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    order = np.argsort(-lengths, kind="stable")  # users active at step s: order[: n_active[s]]
    n_active = np.searchsorted(-lengths[order], -np.arange(max_len), side="left")

    for step in range(max_len):
        users = order[: n_active[step]]
        n = users.size
        chosen = np.zeros(n, dtype=np.int64)

        # Short-range dependency: an unseen sequel of the previous item.
        if step > 0 and spec.p_sequential > 0:
            want = rng.random(n) < spec.p_sequential
            rows = np.flatnonzero(want)
            if rows.size:
                cand = successors[out[start[users[rows]] + step - 1]]  # [r, K]
                w = successor_weight[None, :] * ~seen.contains(users[rows, None], cand)
                ok = w.sum(axis=1) > 0
                rows, cand, w = rows[ok], cand[ok], w[ok]
                if rows.size:
                    chosen[rows] = cand[np.arange(rows.size), _weighted_choice(w, rng)]
                    from_sequel[start[users[rows]] + step] = True

        # Long-term taste: topic from theta (skipping exhausted topics), item by popularity.
        rows = np.flatnonzero(chosen == 0)
        if rows.size:
            u = users[rows]
            has_left = remaining[u] > 0
            tw = taste[u] * has_left
            empty = tw.sum(axis=1) <= 0
            tw[empty] = has_left[empty]  # taste exhausted: any topic with unseen items
            topic = _weighted_choice(tw, rng)
            # Cheap rejection draws first, then an exact draw over the topic's unseen items.
            pending = np.arange(rows.size)
            for _ in range(3 if max_topic <= HUGE_TOPIC else 64):  # exact draws over a huge topic are costly
                pos = _count_at_most(topic_pop_cdf, topic[pending], rng.random(pending.size))
                item = topic_items[topic[pending], np.minimum(pos, max_topic - 1)]
                fresh = ~seen.contains(u[pending], item)
                chosen[rows[pending[fresh]]] = item[fresh]
                pending = pending[~fresh]
                if not pending.size:
                    break
            if pending.size:
                cand = topic_items[topic[pending]]  # [p, max_topic]
                w = topic_pop[topic[pending]] * ~seen.contains(u[pending, None], cand)
                chosen[rows[pending]] = cand[np.arange(pending.size), _weighted_choice(w, rng)]

        seen.add(users, chosen)
        remaining[users, item_topic[chosen]] -= 1  # users are distinct within a step
        out[start[users] + step] = chosen

    users_out = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), lengths)
    return users_out, out.astype(np.int64), from_sequel


def _count_at_most(cdf: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(cdf[rows[j]] <= values[j]).sum() for each j, by binary search per row (cdf rows non-decreasing)."""
    out = np.empty(rows.size, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(cdf.shape[0] + 1))
    for r in range(cdf.shape[0]):
        idx = order[bounds[r] : bounds[r + 1]]
        if idx.size:
            out[idx] = np.searchsorted(cdf[r], values[idx], side="right")
    return out
