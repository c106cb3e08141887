import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.errors import ConfigError
from recattn_jax.losses import binary_cross_entropy, full_cross_entropy, next_item_loss, sample_negatives


def test_full_cross_entropy_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 3, 4)).astype(np.float32)
    table = rng.normal(size=(6, 4)).astype(np.float32)
    targets = np.array([[0, 2, 5], [1, 0, 3]])
    logits = hidden @ table.T
    logits[..., 0] = -np.inf
    expected = []
    for b, t in zip(*np.nonzero(targets), strict=True):
        row = logits[b, t]
        expected.append(np.log(np.exp(row - row.max()).sum()) + row.max() - row[targets[b, t]])
    got = full_cross_entropy(jnp.asarray(hidden), jnp.asarray(table), jnp.asarray(targets), None)
    np.testing.assert_allclose(got, np.mean(expected), rtol=1e-5)


def test_negatives_never_positive_or_padding():
    targets = jnp.asarray(np.random.default_rng(0).integers(0, 6, (64, 20)))
    neg = sample_negatives(jax.random.key(0), targets, num_items=5, count=3)
    assert int(neg.min()) >= 1 and int(neg.max()) <= 5
    assert not bool(jnp.any(neg == targets[..., None]))
    assert len(np.unique(np.asarray(neg))) == 5  # every other item does get drawn


def test_bce_equals_formula_with_the_drawn_negative():
    rng = np.random.default_rng(1)
    hidden = jnp.asarray(rng.normal(size=(1, 2, 3)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    targets = jnp.array([[1, 2]])
    key = jax.random.key(3)
    neg = sample_negatives(key, targets, 3, 1)[..., 0]
    pos_s = jnp.sum(hidden * table[targets], -1)
    neg_s = jnp.sum(hidden * table[neg], -1)
    expected = jnp.mean(-jax.nn.log_sigmoid(pos_s) - jax.nn.log_sigmoid(-neg_s))
    np.testing.assert_allclose(binary_cross_entropy(hidden, table, targets, key), expected, rtol=1e-6)


def test_unknown_loss():
    with pytest.raises(ConfigError, match=r"loss\.name"):
        next_item_loss("hinge")


def test_negatives_avoid_every_positive_of_the_row():
    # each row holds 4 of 30 items; negatives come from the other 26 (the fallback is ~never needed)
    rng = np.random.default_rng(1)
    targets = np.stack([rng.permutation(np.arange(1, 31))[:4] for _ in range(50)])
    neg = np.asarray(sample_negatives(jax.random.key(1), jnp.asarray(targets), num_items=30, count=2))
    for row, negs in zip(targets, neg, strict=True):
        assert not set(negs.ravel()) & set(row)
