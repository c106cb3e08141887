"""One contract over the model registry, on a fixed tiny batch and no files: every registered model offers
exactly the interface of the kind it declares (models/interface.py) and behaves as that kind, takes a
jitted training step that changes its parameters, scores all items and given candidates consistently,
and runs through the evaluator.

This is the fast tier's check of every model; full `train_and_evaluate` runs per model are `slow`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_configs import TINY

from recattn_jax.config import ModelConfig, to_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.losses import full_cross_entropy
from recattn_jax.models import KINDS, MODELS, WITH_USER_FEATURES, build_model
from recattn_jax.models.interface import PROTOCOLS, ModelKind, model_kind
from recattn_jax.models.scoring import score_all, score_items
from recattn_jax.train.step import build_training

METHODS = ("encode", "user_representation", "item_table", "train_loss", "score_all", "score_items")
# what a caller would wrongly use if a model of the kind had it: a DOT_PRODUCT model's own loss would be
# ignored by the training step, an OWN_SCORING model's user vector by the evaluation
ABSENT = {
    ModelKind.DOT_PRODUCT: {"train_loss", "score_all", "score_items"},
    ModelKind.OWN_LOSS: {"score_all", "score_items"},
    ModelKind.OWN_SCORING: {"encode", "user_representation", "item_table"},
}


def _arrays(state) -> list[np.ndarray]:
    """The state's numeric leaves as numpy arrays (RNG key leaves, e.g. a recurrent cell's, are skipped)."""
    leaves = jax.tree.leaves(state)
    return [np.array(x) for x in leaves if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)]


def assert_offers_its_kind(model, kind: ModelKind, name: str) -> None:
    assert model_kind(model) is kind, f"{name}: declares {model_kind(model)}, registered as {kind}"
    protocol = PROTOCOLS[kind]
    assert isinstance(model, protocol), f"{name} ({kind}) lacks a method of {protocol.__name__}"
    extra = {m for m in METHODS if hasattr(model, m)} & ABSENT[kind]
    assert not extra, f"{name} ({kind}) has {sorted(extra)}, which its kind's callers never use"


@pytest.fixture(scope="module")
def tiny_split():
    return load_split(to_config(TINY).data)


def test_every_model_declares_a_kind():
    assert set(KINDS) == set(MODELS) and all(isinstance(k, ModelKind) for k in KINDS.values())
    assert {KINDS[n] for n in ("sasrec", "attn_pool", "lstm", "gru4rec")} == {ModelKind.DOT_PRODUCT}
    assert {KINDS[n] for n in ("bert4rec", "bpr_mf")} == {ModelKind.OWN_LOSS}
    assert {KINDS[n] for n in ("din", "pop")} == {ModelKind.OWN_SCORING}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name, tiny_split):
    config = to_config({**TINY, "model": {**TINY["model"], "name": name, "dropout": 0.0}, "loss": {"name": "ce"}})
    num_items = tiny_split.data.num_items
    kind = KINDS[name]
    arrays = next_item_arrays(tiny_split.train_sequences, config.model.max_len)
    batch = arrays.batch(np.arange(8), config.model.max_len)
    seq, users = batch["inputs"], batch["users"]
    graphdef, state, train_step, model_graphdef = build_training(config, num_items)
    model = nnx.merge(graphdef, state)[0]
    assert_offers_its_kind(model, kind, name)
    before = _arrays(nnx.state(model))
    next_item_ce = None  # the configured loss (ce) over the encoded states, what DOT_PRODUCT trains by
    if hasattr(model, "encode"):
        next_item_ce = float(full_cross_entropy(model.encode(seq), model.item_table(), batch["targets"], None))
        if kind is ModelKind.DOT_PRODUCT:  # the last training state is the user vector that is scored
            np.testing.assert_allclose(model.encode(seq)[:, -1], model.user_representation(seq), atol=1e-5)

    state, metrics = train_step(state, batch, jax.random.key(0))
    loss = float(metrics["loss"])
    assert np.isfinite(loss) and loss >= 0  # pop's "loss" is 0
    if kind is ModelKind.DOT_PRODUCT:
        np.testing.assert_allclose(loss, next_item_ce, rtol=1e-5)
    elif next_item_ce is not None:  # bert4rec: its masked-item loss, not the next-item one
        assert not np.isclose(loss, next_item_ce, rtol=1e-3)
    model = nnx.merge(graphdef, state)[0]
    after = _arrays(nnx.state(model))  # parameters, or pop's counts
    changed = [not np.array_equal(a, b) for a, b in zip(before, after, strict=True)]
    assert any(changed), f"{name}: one step changed none of the model's state"

    scores = np.asarray(score_all(model, seq, users))
    assert scores.shape == (8, num_items + 1) and np.all(np.isfinite(scores[:, 1:]))
    if kind.dot_product_scores:
        np.testing.assert_allclose(scores, model.user_representation(seq) @ model.item_table().T, rtol=1e-5)
    candidates = np.random.default_rng(0).integers(1, num_items + 1, (8, 11))
    picked = np.asarray(score_items(model, seq, candidates, users))
    # the sampled protocol (score_items) and full ranking (score_all) must agree on every candidate
    np.testing.assert_allclose(picked, np.take_along_axis(scores, candidates, axis=1), rtol=1e-4, atol=1e-4)

    # the evaluator's one-dispatch pass (a scan over user batches) runs every model
    eval_set = build_eval_set(tiny_split, "valid", config.model.max_len, config.eval)
    metrics = Evaluator(model_graphdef, config.eval).evaluate(nnx.state(model), eval_set)
    for protocol in ("full", "sampled"):
        assert 0 <= metrics[protocol]["NDCG@10"] <= metrics[protocol]["HR@10"] <= 1


@pytest.mark.parametrize("name", sorted(WITH_USER_FEATURES))
def test_user_features_keep_the_kind(name):
    """The user-features wrapper offers its model's kind's interface, and needs the user indices."""
    config = ModelConfig(name=name, max_len=4, hidden=8, blocks=1, heads=1, dropout=0.0)
    model = build_model(config, 5, backend="reference", rngs=nnx.Rngs(0), user_features=np.eye(3, dtype=np.float32))
    assert_offers_its_kind(model, KINDS[name], f"{name}+user_features")
    seq = jnp.array([[0, 1, 2, 3], [0, 1, 2, 3]])
    assert score_all(model, seq, jnp.array([0, 1])).shape == (2, 6)
    with pytest.raises(ValueError, match="pass the user indices"):
        score_all(model, seq)
