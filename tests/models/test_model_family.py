import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_configs import TINY

from recattn_jax.config import ModelConfig, to_config
from recattn_jax.config_checks import check_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.errors import ConfigError
from recattn_jax.models import MODELS, build_model
from recattn_jax.models.scoring import score_all, score_items
from recattn_jax.train.epoch import run_epoch
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.step import build_training

FAMILY = ["attn_pool", "din", "bert4rec", "lstm", "gru4rec", "pop", "bpr_mf"]


def model(name, **kw):
    config = ModelConfig(**{"name": name, "max_len": 8, "hidden": 16, "blocks": 1, "heads": 2, "dropout": 0.0, **kw})
    return build_model(config, num_items=30, backend="reference", rngs=nnx.Rngs(0))


def test_family_is_registered():
    assert set(FAMILY) <= set(MODELS)


@pytest.mark.slow  # the fast tier's check of every model is tests/models/test_model_contract.py
@pytest.mark.parametrize("name", [*FAMILY, "lstm:bce", "gru4rec:gbce", "sasrec:sampled_softmax"])
def test_two_steps_then_evaluate(name, tmp_path):
    config = copy.deepcopy(TINY)
    name, _, loss = name.partition(":")
    config["model"]["name"] = name
    config["loss"] = {"name": loss or "ce", "num_negatives": 3}
    results = train_and_evaluate(to_config(config), tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
    for protocol in ("full", "sampled"):
        assert 0 <= results["test"][protocol]["NDCG@10"] <= results["test"][protocol]["HR@10"] <= 1
    assert (tmp_path / "results.json").exists()


def test_attn_pool_weights_sum_to_one_and_skip_padding():
    m = model("attn_pool")
    seq = jnp.array([[0, 0, 0, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9], [1, 2, 3, 4, 5, 6, 7, 8]], jnp.int32)
    w = nnx.jit(lambda m, seq: m.attention_weights(seq))(m, seq)  # [B, N, L]; jitted: one compile per function
    np.testing.assert_allclose(jnp.sum(w, -1), 1.0, rtol=1e-6)
    assert float(jnp.abs(w[0, :, :3]).max()) == 0.0 and float(jnp.abs(w[1, :, :7]).max()) == 0.0
    # the pooled vector is the weighted sum the weights describe, per head
    x = m.embedding(seq) * (seq != 0)[..., None]
    expected = jnp.einsum("bnl,blnh->bnh", w, x.reshape(3, 8, 2, 8)).reshape(3, 16)
    user = nnx.jit(lambda m, seq: m.user_representation(seq))(m, seq)
    np.testing.assert_allclose(user, expected, atol=1e-5)
    # training states are the pools of every prefix; the last is the user vector
    np.testing.assert_allclose(nnx.jit(lambda m, seq: m.encode(seq))(m, seq)[:, -1], user, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 31, 64])
def test_din_chunked_equals_unchunked(chunk):
    m = model("din", candidate_chunk=chunk)
    seq = jnp.array([[0, 0, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 1, 2]], jnp.int32)
    items = jnp.broadcast_to(jnp.arange(31), (2, 31))
    unchunked = score_items(m, seq, items)
    chunked = score_all(m, seq)
    assert chunked.shape == (2, 31)
    np.testing.assert_allclose(chunked, unchunked, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru4rec"])
def test_recurrent_state_is_not_polluted_by_padding(name):
    m = model(name)
    seq = jnp.array([[0, 0, 0, 4, 5, 6, 7, 8]], jnp.int32)
    np.testing.assert_allclose(m.user_representation(seq), m.user_representation(seq[:, 3:]), atol=1e-5)
    # the padded slots' embeddings do not matter
    m.items.ids.embedding[...] = m.items.ids.embedding[...].at[0].add(3.0)
    np.testing.assert_allclose(m.user_representation(seq), m.user_representation(seq[:, 3:]), atol=1e-5)


def test_bert4rec_mask_token_is_not_a_candidate_and_sees_both_sides():
    m = model("bert4rec")
    assert m.item_table().shape == (31, 16) and m.mask_token == 31
    seq = jnp.array([[0, 0, 3, 4, 5, 6, 7, 8]], jnp.int32)
    base = m.encode(seq)
    changed = m.encode(seq.at[0, -1].set(9))
    assert not np.allclose(base[0, 2], changed[0, 2], atol=1e-6)  # bidirectional: later items matter


def test_pop_counts_the_items_of_the_training_rows(tiny_config):
    tiny_config.model.name = "pop"
    split = load_split(tiny_config.data)
    arrays = next_item_arrays(split.train_sequences, tiny_config.model.max_len)
    graphdef, state, step, _ = build_training(tiny_config, split.data.num_items)
    state, _ = run_epoch(step, state, arrays, tiny_config.train, tiny_config.seed, 1, 10**9)
    model, _ = nnx.merge(graphdef, state)
    # a row holds its user's last max_len + 1 training items: the first input, then the targets
    window = [split.train_sequences[u][-(tiny_config.model.max_len + 1) :] for u in arrays.users]
    expected = np.bincount(np.concatenate(window), minlength=split.data.num_items + 1)
    np.testing.assert_allclose(np.asarray(model.counts[...]), expected)


def test_pop_refuses_whole_history_windows(tiny_config):
    """Whole-history windows share an item each (a window's first input is the last target of the one
    before), so pop, which counts each row's items, would count it twice: refused before a run."""
    tiny_config.model.name, tiny_config.train.whole_history = "pop", True
    with pytest.raises(
        ConfigError, match=r"^train\.whole_history=true with model\.name=pop: .* counts each user's newest"
    ):
        check_config(tiny_config)
    tiny_config.train.whole_history = False
    check_config(tiny_config)


def test_bpr_mf_user_is_mean_of_history_factors():
    m = model("bpr_mf")
    seq = jnp.array([[0, 0, 0, 0, 0, 2, 3, 4]], jnp.int32)
    y = m.history_factors.table
    np.testing.assert_allclose(m.user_representation(seq)[0], (y[2] + y[3] + y[4]) / 3, atol=1e-6)
    loss = m.train_loss(
        {"inputs": seq, "targets": jnp.array([[0, 0, 0, 0, 2, 3, 4, 5]])}, None, jax.random.key(0), None
    )
    assert np.isfinite(float(loss))
