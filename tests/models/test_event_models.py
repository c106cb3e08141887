"""Multi-behaviour input: every sequence model adds an event embedding per position; pop and bpr_mf refuse."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_configs import TINY

from recattn_jax.config import ModelConfig, to_config
from recattn_jax.errors import ConfigError
from recattn_jax.models import WITH_EVENTS, build_model
from recattn_jax.models.scoring import score_all, score_items, training_loss, user_vectors
from recattn_jax.recommend import recommend
from recattn_jax.train.loop import train_and_evaluate

SEQUENCE_MODELS = ["sasrec", "bert4rec", "attn_pool", "din", "lstm", "gru4rec"]
SEQ = jnp.array([[0, 0, 0, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 1, 2]], jnp.int32)
EVENTS = jnp.array([[0, 0, 0, 1, 2, 1, 1, 2], [0, 0, 0, 0, 0, 0, 2, 2]], jnp.int32)


def model(name, num_event_types=2, **kw):
    config = ModelConfig(**{"name": name, "max_len": 8, "hidden": 16, "blocks": 1, "heads": 2, "dropout": 0.0, **kw})
    return build_model(config, num_items=30, backend="reference", rngs=nnx.Rngs(0), num_event_types=num_event_types)


def with_events(name: str) -> dict:
    config = copy.deepcopy(TINY)
    config["data"]["synthetic"]["events"] = True
    config["model"]["name"] = name
    return config


def test_the_sequence_models_take_events():
    assert set(SEQUENCE_MODELS) == WITH_EVENTS


@pytest.mark.parametrize(
    "name", [n if n == "sasrec" else pytest.param(n, marks=pytest.mark.slow) for n in SEQUENCE_MODELS]
)
def test_two_steps_then_evaluate_with_events(name, tmp_path):
    results = train_and_evaluate(to_config(with_events(name)), tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
    assert results["data"]["event_types"] == ["click", "purchase"]
    for protocol in ("full", "sampled"):
        assert 0 <= results["test"][protocol]["NDCG@10"] <= results["test"][protocol]["HR@10"] <= 1


@pytest.mark.slow
def test_bucketed_training_and_recommend_with_events(tmp_path):
    config = with_events("sasrec")
    config["train"]["bucketing"] = True
    train_and_evaluate(to_config(config), tmp_path)
    recs = recommend(tmp_path, k=3, users=[1, 2])
    assert len(recs) == 6 and np.all(np.isfinite(recs["score"]))


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_events_change_the_scores_and_padding_events_do_not(name):
    m = model(name)
    items = jnp.broadcast_to(jnp.arange(1, 31), (2, 30))
    base = score_all(m, SEQ, events=EVENTS)
    assert base.shape == (2, 31) and np.all(np.isfinite(base))
    flipped = jnp.where(SEQ != 0, 3 - EVENTS, 0)  # click <-> purchase on every item, same items
    assert not np.allclose(score_all(m, SEQ, events=flipped), base, atol=1e-5)
    assert not np.allclose(score_items(m, SEQ, items, events=flipped), score_items(m, SEQ, items, events=EVENTS))
    on_padding = jnp.where(SEQ == 0, 2, EVENTS)  # events where there is no item are never read
    np.testing.assert_allclose(score_all(m, SEQ, events=on_padding), base, atol=1e-5)


def test_bert4rec_mask_position_gets_event_zero():
    m = model("bert4rec")
    # the user vector is [mask]'s output after the shifted history; [mask] carries event 0
    shifted = jnp.concatenate([SEQ[:, 1:], jnp.full((2, 1), m.mask_token)], axis=1)
    events = jnp.concatenate([EVENTS[:, 1:], jnp.zeros((2, 1), EVENTS.dtype)], axis=1)
    np.testing.assert_allclose(
        m.user_representation(SEQ, events=EVENTS), m.encode(shifted, events=events)[:, -1], atol=1e-5
    )


def test_event_calls_are_checked():
    with pytest.raises(ValueError, match="pass events="):
        model("sasrec").user_representation(SEQ)
    with pytest.raises(ValueError, match="built without event types"):
        model("lstm", num_event_types=0).user_representation(SEQ, events=EVENTS)
    with pytest.raises(ValueError, match="do not match"):
        model("gru4rec").user_representation(SEQ, events=EVENTS[:, 1:])


def test_without_events_there_is_no_event_table():
    for name in SEQUENCE_MODELS:
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model(name, 0)))]
        assert not any("events" in p for p in paths), name
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model(name)))]
        assert any("events" in p for p in paths), name


@pytest.mark.parametrize("name", ["pop", "bpr_mf"])
def test_models_without_positions_refuse_events(name, tmp_path):
    with pytest.raises(ConfigError, match=f"model={name} has no per-position input.*drop data.event_col"):
        model(name)
    with pytest.raises(ConfigError, match="2 event types"):
        train_and_evaluate(to_config(with_events(name)), tmp_path)


def test_user_features_pass_the_events_through():
    config = ModelConfig(max_len=8, hidden=16, blocks=1, heads=2, dropout=0.0)
    m = build_model(
        config, 30, backend="reference", rngs=nnx.Rngs(0), user_features=np.eye(2, dtype=np.float32), num_event_types=2
    )
    users = jnp.array([0, 1])
    flipped = jnp.where(SEQ != 0, 3 - EVENTS, 0)
    assert not np.allclose(user_vectors(m, SEQ, users, EVENTS), user_vectors(m, SEQ, users, flipped), atol=1e-5)
    batch = {"inputs": SEQ, "targets": SEQ, "users": users, "events": EVENTS}
    loss_fn = lambda h, t, y, r: jnp.mean(h[..., 0])  # noqa: E731  (reads the encoded states only)
    loss = training_loss(m, batch, loss_fn, jax.random.key(0), None)
    assert np.isfinite(float(loss))
    assert not np.isclose(loss, training_loss(m, {**batch, "events": flipped}, loss_fn, jax.random.key(0), None))
