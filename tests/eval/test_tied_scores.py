"""Ties count against the target on every scoring path: items whose rows equal the target's row rank ahead
of it, with the item table scanned whole, in chunks, or as sampled candidates. A chunk's matmul and a
row-wise dot can round the same product differently in the last bit; a target scored one way and its
equals the other would win or lose such ties at random, which lifts a collapsed model's metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.eval.ranking import candidate_scores, full_ranks, sampled_ranks
from recattn_jax.parallel.topk import chunked_ranks

ITEMS = 200


def collapsed(dim, distinct=6, users=64, seed=0):
    """A user batch and an item table of `distinct` rows repeated (item i has row i mod distinct)."""
    rng = np.random.default_rng(seed)
    user = jnp.asarray(rng.normal(size=(users, dim)), jnp.float32)
    base = rng.normal(size=(distinct + 1, dim)).astype(np.float32)
    table = jnp.asarray(base[np.r_[0, (np.arange(1, ITEMS + 1) % distinct) + 1]])
    targets = jnp.asarray(rng.integers(1, ITEMS + 1, size=users), jnp.int32)
    seen = jnp.asarray(rng.integers(0, ITEMS + 1, size=(users, 9)), jnp.int32)
    return user, table, targets, seen


def pessimistic_ranks(user, table, targets, seen, distinct=6):
    """The rank by construction: every unseen item in the target's group (its equal rows) beats it, and the
    items of each other group beat it when that group's exact score (float64) is higher."""
    u, t = np.asarray(user, np.float64), np.asarray(table, np.float64)
    ranks = []
    for b in range(u.shape[0]):
        group = np.arange(ITEMS + 1) % distinct
        exact = t @ u[b]
        target = int(targets[b])
        gone = set(np.asarray(seen[b]).tolist()) | {0, target}
        ahead = [
            i for i in range(1, ITEMS + 1) if i not in gone and exact[i] >= exact[target] - 1e-9 * abs(exact[target])
        ]
        assert all(group[i] == group[target] or exact[i] > exact[target] for i in ahead)  # no near-tie across groups
        ranks.append(len(ahead))
    return np.asarray(ranks)


@pytest.mark.parametrize("dim", [16, 64])
def test_chunked_ranks_count_equal_rows_against_the_target(dim):
    user, table, targets, seen = collapsed(dim)
    want = pessimistic_ranks(user, table, targets, seen)
    np.testing.assert_array_equal(full_ranks(user @ table.T, targets, seen), want)
    for chunk in (17, 64, 200, 201, 1000):  # 17 and 64 leave an overlapping last chunk
        got = jax.jit(lambda u, t, g, s, c=chunk: chunked_ranks(u, t, g, s, chunk=c, num_items=ITEMS))(
            user, table, targets, seen
        )
        np.testing.assert_array_equal(got, want, err_msg=f"chunk {chunk}")


@pytest.mark.parametrize("dim", [16, 64])
def test_sampled_candidates_count_equal_rows_against_the_target(dim):
    user, table, targets, _ = collapsed(dim)
    rng = np.random.default_rng(1)
    others = np.stack([rng.choice(np.setdiff1d(np.arange(1, ITEMS + 1), [t]), 100, replace=False) for t in targets])
    candidates = jnp.asarray(np.concatenate([np.asarray(targets)[:, None], others], axis=1), jnp.int32)
    scores = jax.jit(candidate_scores)(user, table[candidates])
    group = np.asarray(candidates) % 6
    exact = np.einsum("bd,bcd->bc", np.asarray(user, np.float64), np.asarray(table, np.float64)[np.asarray(candidates)])
    want = np.sum((group[:, 1:] == group[:, :1]) | (exact[:, 1:] > exact[:, :1]), axis=1)
    np.testing.assert_array_equal(sampled_ranks(scores), want)
