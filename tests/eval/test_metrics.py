import math

import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.eval.metrics import ranking_metrics
from recattn_jax.eval.ranking import full_ranks, sampled_ranks


def test_metrics_by_hand():
    m = ranking_metrics(np.array([0, 2, 15]), ks=(1, 5, 10))
    assert m["HR@1"] == pytest.approx(1 / 3)
    assert m["HR@5"] == pytest.approx(2 / 3) and m["HR@10"] == pytest.approx(2 / 3)
    assert m["NDCG@1"] == pytest.approx(1 / 3)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 16) / 3)


def test_full_ranks_mask_history_and_padding():
    # items 0..5; the target is item 2 (score 0.5)
    scores = jnp.array([[9.0, 0.9, 0.5, 0.7, 0.1, 0.5]])
    # item 1 (0.9) is seen; padding 0 never counts; item 3 beats the target; item 5 ties (counts against)
    ranks = full_ranks(scores, jnp.array([2]), jnp.array([[1, 0, 0]]))
    assert int(ranks[0]) == 2
    assert int(full_ranks(scores, jnp.array([2]), jnp.array([[1, 3, 5]]))[0]) == 0


def test_full_ranks_target_in_history_still_ranked():
    scores = jnp.array([[0.0, 0.3, 0.2, 0.1]])
    assert int(full_ranks(scores, jnp.array([2]), jnp.array([[2, 0]]))[0]) == 1  # only item 1 beats it


def test_constant_scores_get_no_credit():
    scores = jnp.zeros((1, 10))
    assert int(full_ranks(scores, jnp.array([3]), jnp.zeros((1, 1), jnp.int32))[0]) == 8
    assert int(sampled_ranks(jnp.zeros((1, 101)))[0]) == 100


def test_sampled_ranks():
    scores = jnp.array([[0.5, 0.1, 0.9, 0.2], [1.0, 0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(sampled_ranks(scores), [1, 0])
