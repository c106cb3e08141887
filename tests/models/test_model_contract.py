"""One contract over the model registry, on a fixed tiny batch and no files: every registered model takes a
jitted training step that changes its parameters, scores all items and given candidates consistently, and
runs through the evaluator.

This is the fast tier's check of every model; full `train_and_evaluate` runs per model are `slow`."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.models import MODELS
from recattn_jax.models.scoring import score_all, score_items
from recattn_jax.train.step import build_training


def _arrays(state) -> list[np.ndarray]:
    """The state's numeric leaves as numpy arrays (RNG key leaves, e.g. a recurrent cell's, are skipped)."""
    leaves = jax.tree.leaves(state)
    return [np.array(x) for x in leaves if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)]


@pytest.fixture(scope="module")
def tiny_split():
    return load_split(to_config(TINY).data)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name, tiny_split):
    config = to_config({**TINY, "model": {**TINY["model"], "name": name}, "loss": {"name": "ce"}})
    num_items = tiny_split.data.num_items
    arrays = next_item_arrays(tiny_split.train_sequences, config.model.max_len)
    batch = arrays.batch(np.arange(8), config.model.max_len)
    graphdef, state, train_step, model_graphdef = build_training(config, num_items)
    before = _arrays(nnx.state(nnx.merge(graphdef, state)[0]))

    state, metrics = train_step(state, batch, jax.random.key(0))
    assert np.isfinite(float(metrics["loss"])) and float(metrics["loss"]) >= 0  # pop's "loss" is 0
    model = nnx.merge(graphdef, state)[0]
    after = _arrays(nnx.state(model))  # parameters, or pop's counts
    changed = [not np.array_equal(a, b) for a, b in zip(before, after, strict=True)]
    assert any(changed), f"{name}: one step changed none of the model's state"

    seq, users = batch["inputs"], batch["users"]
    scores = np.asarray(score_all(model, seq, users))
    assert scores.shape == (8, num_items + 1) and np.all(np.isfinite(scores[:, 1:]))
    candidates = np.random.default_rng(0).integers(1, num_items + 1, (8, 11))
    picked = np.asarray(score_items(model, seq, candidates, users))
    # the sampled protocol (score_items) and full ranking (score_all) must agree on every candidate
    np.testing.assert_allclose(picked, np.take_along_axis(scores, candidates, axis=1), rtol=1e-4, atol=1e-4)

    # the evaluator's one-dispatch pass (a scan over user batches) runs every model
    eval_set = build_eval_set(tiny_split, "valid", config.model.max_len, config.eval)
    metrics = Evaluator(model_graphdef, config.eval).evaluate(nnx.state(model), eval_set)
    for protocol in ("full", "sampled"):
        assert 0 <= metrics[protocol]["NDCG@10"] <= metrics[protocol]["HR@10"] <= 1
