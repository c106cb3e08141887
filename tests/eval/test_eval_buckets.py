"""eval.bucketing: eval users grouped by history length, each group's histories cut to its length, rank exactly
as one group at max_len does, for every registered model; small eval sets stay one group (one compile)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from flax import nnx
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.data.bucketing import bucket_lengths
from recattn_jax.data.load import load_split
from recattn_jax.eval import ranking
from recattn_jax.eval.ranking import Evaluator, build_eval_set, length_groups
from recattn_jax.models import MODELS
from recattn_jax.train.step import build_training


def _check_partition(groups, lengths, max_len):
    rows = np.concatenate([r for r, _ in groups])
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(lengths)))  # every user once
    group_lengths = [length for _, length in groups]
    assert group_lengths == sorted(set(group_lengths)) and set(group_lengths) <= set(bucket_lengths(max_len))
    for r, length in groups:
        assert lengths[r].max() <= length  # the cut keeps every history whole (the key counts a spare slot)


def test_a_large_eval_set_splits_and_a_small_one_stays_whole():
    rng = np.random.default_rng(0)
    # ML-1M-like: 6,040 users, lengths spread from 18 to past max_len 200
    lengths = np.minimum(rng.lognormal(np.log(95), 1.0, 6040).astype(int) + 18, 200)
    groups = length_groups(lengths, 200, 32)
    _check_partition(groups, lengths, 200)
    assert len(groups) > 1
    saved = len(lengths) * 200 - sum(-(-len(r) // 32) * 32 * length for r, length in groups)
    assert saved >= ranking.MIN_SAVED_POSITIONS * (len(groups) - 1)

    small = rng.integers(1, 11, 60)  # the test configs' size: less to save than a compile costs
    assert [length for _, length in length_groups(small, 10, 32)] == [10]


def test_groups_merge_only_below_the_saving(monkeypatch):
    lengths = np.array([3] * 40 + [10] * 40)
    monkeypatch.setattr(ranking, "MIN_SAVED_POSITIONS", 0)
    groups = length_groups(lengths, 10, 8)
    _check_partition(groups, lengths, 10)
    assert [(len(r), length) for r, length in groups] == [(40, 3), (40, 10)]
    monkeypatch.setattr(ranking, "MIN_SAVED_POSITIONS", 40 * 7 + 1)  # one more than the split saves
    assert [(len(r), length) for r, length in length_groups(lengths, 10, 8)] == [(80, 10)]


@pytest.fixture(scope="module")
def tiny_split():
    return load_split(to_config(TINY).data)


# attn_pool pools like din and lstm recurs like gru4rec: the fast tier checks one of each
SLOW = {"attn_pool", "lstm"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(MODELS)])
def test_length_groups_rank_as_one_group(name, tiny_split, monkeypatch):
    monkeypatch.setattr(ranking, "MIN_SAVED_POSITIONS", 0)  # every length bucket its own group
    # eval batches of 4 users: with whole batches counted, a group of 32 would save nothing on 60 users
    config = to_config({**TINY, "model": {**TINY["model"], "name": name}, "eval": {**TINY["eval"], "batch_size": 4}})
    graphdef, state, _, model_graphdef = build_training(config, tiny_split.data.num_items)
    model_state = nnx.state(nnx.merge(graphdef, state)[0])
    for split_name in ("valid", "test"):
        eval_set = build_eval_set(tiny_split, split_name, config.model.max_len, config.eval)
        grouped = Evaluator(model_graphdef, config.eval)
        assert len(grouped._on_device(eval_set)) > 1, "the tiny data should give more than one length group"
        one = Evaluator(model_graphdef, dataclasses.replace(config.eval, bucketing=False))
        assert len(one._on_device(eval_set)) == 1
        got, want = grouped.evaluate(model_state, eval_set), one.evaluate(model_state, eval_set)
        for protocol in want:  # same ranks; the means differ only in summation order
            assert got[protocol] == pytest.approx(want[protocol], rel=1e-9, abs=1e-12), (name, split_name, protocol)
