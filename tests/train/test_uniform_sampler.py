"""loss.sampler=uniform: per-row negatives drawn without replacement outside the row's items (K&V's SASRec+
3000), checked against a dense softmax over every free item, values and gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.config_checks import check_config, check_levers_fit_mesh, check_sampler_fits
from recattn_jax.data.batches import target_positions
from recattn_jax.data.load import load_split
from recattn_jax.errors import ConfigError
from recattn_jax.losses import next_item_loss, row_negatives, uniform_sampled_softmax
from recattn_jax.train.loop import train_and_evaluate


def distinct_rows(seed, b=3, length=7, items=30, dim=8):
    """Rows of length + 1 distinct items (no padding): every row leaves items - length - 1 free items."""
    rng = np.random.default_rng(seed)
    seq = np.stack([rng.permutation(np.arange(1, items + 1))[: length + 1] for _ in range(b)])
    hidden = jnp.asarray(rng.normal(size=(b, length, dim)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(items + 1, dim)), jnp.float32)
    return hidden, table, jnp.asarray(seq[:, 1:], jnp.int32), jnp.asarray(seq[:, :-1], jnp.int32)


def dense_free_softmax(hidden, table, targets, seen):
    """Materialised logits; position t's softmax: its target and every item outside its row."""
    items = table.shape[0]
    logits = jnp.einsum("bld,id->bli", hidden, table)
    in_row = jnp.zeros((targets.shape[0], items), bool)
    in_row = in_row.at[jnp.arange(targets.shape[0])[:, None], jnp.concatenate([seen, targets], 1)].set(True)
    candidate = ~in_row.at[:, 0].set(True)[:, None, :] | (jnp.arange(items) == targets[..., None])
    logits = jnp.where(candidate, logits, -jnp.inf)
    nll = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    return jnp.mean(nll)


def grads(f, hidden, table):
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(hidden, table)


def test_row_negatives_are_distinct_items_outside_the_row():
    rng = np.random.default_rng(0)
    row_items = jnp.asarray(rng.integers(0, 41, (6, 15)), jnp.int32)  # repeats and padding (0)
    negatives, free = jax.jit(row_negatives, static_argnums=(2, 3))(jax.random.key(1), row_items, 40, 20)
    negatives, free = np.asarray(negatives), np.asarray(free)
    assert negatives.shape == (6, 20) and free.all()
    for row, drawn in zip(np.asarray(row_items), negatives, strict=True):
        assert len(set(drawn)) == 20  # without replacement
        assert drawn.min() >= 1 and drawn.max() <= 40  # never padding, never past the catalogue
        assert not set(drawn) & set(row)


def test_row_negatives_draw_every_free_item_equally():
    """4,000 draws of 5 of a row's 25 free items: each free item 800 times in expectation (sd about 25)."""
    row_items = jnp.asarray([[3, 9, 9, 17, 29, 0]], jnp.int32)  # 4 distinct items of 1..29 taken, and padding
    draw = jax.jit(jax.vmap(lambda key: row_negatives(key, row_items, 29, 5)[0][0]))
    counts = np.bincount(np.asarray(draw(jax.random.split(jax.random.key(2), 4000))).ravel(), minlength=30)
    free = np.setdiff1d(np.arange(1, 30), [3, 9, 17, 29])
    assert len(free) == 25 and counts[[0, 3, 9, 17, 29]].sum() == 0
    assert np.all(np.abs(counts[free] - 4000 * 5 / len(free)) < 150)


def dense_softmax_over(hidden, table, targets, negatives):
    """Materialised logits; every position of row b: its target and the items negatives[b]."""
    logits = jnp.einsum("bld,id->bli", hidden, table)
    rows = jnp.arange(targets.shape[0])[:, None]
    drawn = jnp.zeros((targets.shape[0], table.shape[0]), bool).at[rows, negatives].set(True)
    candidate = drawn[:, None, :] | (jnp.arange(table.shape[0]) == targets[..., None])
    logits = jnp.where(candidate, logits, -jnp.inf)
    nll = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    mask = targets != 0
    return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.sum(mask)


@pytest.mark.parametrize("chunk", [128, 16])
def test_fewer_negatives_than_free_items_are_the_rows_draws(chunk):
    """12 of a row's 48 free items: the loss is the softmax over each position's target and exactly the row's
    draws from `row_negatives` with the same key, shared by the row's positions (repeats and padding too)."""
    rng = np.random.default_rng(7)
    b, length, items = 3, 9, 60
    seq = rng.integers(1, 13, (b, length + 1)) + np.arange(b)[:, None] * 13  # repeats within a row
    seq[0, :3] = 0  # left padding
    hidden = jnp.asarray(rng.normal(size=(b, length, 8)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(items + 1, 8)), jnp.float32)
    targets, seen = jnp.asarray(seq[:, 1:], jnp.int32), jnp.asarray(seq[:, :-1], jnp.int32)
    key = jax.random.key(9)
    negatives, free = row_negatives(key, jnp.concatenate([seen, targets], axis=1), items, 12)
    assert bool(free.all())
    want = grads(lambda h, t: dense_softmax_over(h, t, targets, negatives), hidden, table)
    got = grads(lambda h, t: uniform_sampled_softmax(h, t, targets, seen, key, 12, chunk=chunk), hidden, table)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [128, 8])  # 8 < 31 items: the scan over several item chunks
def test_every_free_item_as_a_negative_is_the_dense_softmax_over_free_items(chunk):
    hidden, table, targets, seen = distinct_rows(3)
    free = table.shape[0] - 1 - (targets.shape[1] + 1)
    want = grads(lambda h, t: dense_free_softmax(h, t, targets, seen), hidden, table)
    for count in (free, free + 3):  # free + 3: the draws past the free items are the row's own, masked out
        got = grads(
            lambda h, t, c=count: uniform_sampled_softmax(h, t, targets, seen, jax.random.key(4), c, chunk=chunk),
            hidden,
            table,
        )
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        for g, w in zip(got[1], want[1], strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_fewer_negatives_give_a_smaller_loss_and_padding_counts_for_nothing():
    hidden, table, targets, seen = distinct_rows(5, items=60)
    loss = next_item_loss("sampled_softmax", 10, sampler="uniform")
    key = jax.random.key(0)
    full = float(dense_free_softmax(hidden, table, targets, seen))
    sampled = float(loss(hidden, table, targets, key, seen=seen))
    assert 0 < sampled < full  # 10 of 52 free items: a part of the softmax's mass
    padded_targets = jnp.concatenate([jnp.zeros((3, 4), jnp.int32), targets], axis=1)
    padded_seen = jnp.concatenate([jnp.zeros((3, 4), jnp.int32), seen], axis=1)
    padded_hidden = jnp.concatenate([jnp.ones((3, 4, hidden.shape[2])), hidden], axis=1)
    assert float(loss(padded_hidden, table, padded_targets, key, seen=padded_seen)) == pytest.approx(sampled, rel=1e-6)


def test_refusals(tiny_config):
    hidden, table, targets, _ = distinct_rows(0)
    with pytest.raises(ConfigError, match="loss.sampler=uniform needs each row's items"):
        next_item_loss("sampled_softmax", 4, sampler="uniform")(hidden, table, targets, jax.random.key(0))
    with pytest.raises(ConfigError, match="sampled_softmax only"):
        next_item_loss("ce", sampler="uniform")
    with pytest.raises(ConfigError, match="choose one of"):
        next_item_loss("sampled_softmax", 4, sampler="popular")
    tiny_config.loss.sampler = "uniform"
    with pytest.raises(ConfigError, match="loss.sampler=uniform applies to loss.name=sampled_softmax only, not ce"):
        check_config(tiny_config)
    tiny_config.loss.name, tiny_config.loss.sampler = "sampled_softmax", "popular"
    with pytest.raises(ConfigError, match=r"loss.sampler='popular'; choose one of \['in_batch', 'uniform'\]"):
        check_config(tiny_config)
    tiny_config.loss.sampler = "uniform"
    with pytest.raises(ConfigError, match="runs on one device only"):
        check_levers_fit_mesh(tiny_config)
    check_config(tiny_config)
    for name in ("bert4rec", "din"):  # their own objectives: no next-item loss over a row's items
        own = dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, name=name))
        with pytest.raises(
            ConfigError, match=rf"loss.sampler=uniform .* model.name={name} .* \['attn_pool', 'gru4rec'"
        ):
            check_config(own)
        own.loss = dataclasses.replace(own.loss, name="ce", sampler="in_batch", exclude_seen=True)
        with pytest.raises(ConfigError, match=rf"loss.exclude_seen=true .* model.name={name}"):
            check_config(own)


def test_too_many_negatives_for_a_row_are_refused_with_the_numbers(tiny_config):
    """Tiny data: 50 items, max_len 10, so a row holds up to 11 items and leaves 39 to draw."""
    split = load_split(tiny_config.data)
    assert max(len(s) for s in split.train_sequences) > 11 and split.data.num_items == 50
    loss = dataclasses.replace(tiny_config.loss, name="sampled_softmax", sampler="uniform", num_negatives=39)
    check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)  # exactly what a row leaves
    loss.num_negatives = 40
    with pytest.raises(ConfigError, match=r"loss.num_negatives=40 .* leaves 39 of the 50 items .* at most 39"):
        check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)
    loss.sampler = "in_batch"  # draws from the batch's targets: no per-row bound
    check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)


def test_gbce_negatives_beyond_the_other_items_are_refused(tiny_config):
    """gBCE's beta comes from the sampling rate negatives / (items - 1); above 1 it is not defined (on 50
    items, 1000 negatives gave beta = 15.6 where it is at most 1). BCE draws with replacement: no bound."""
    split = load_split(tiny_config.data)
    loss = dataclasses.replace(tiny_config.loss, name="gbce", num_negatives=49)
    check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)
    loss.num_negatives = 50
    with pytest.raises(
        ConfigError, match=r"loss.num_negatives=50 with loss=gbce: more than the 49 items .* at most 49$"
    ):
        check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)
    loss.name = "bce"
    check_sampler_fits(dataclasses.replace(tiny_config, loss=loss), split)


def test_packed_positions_equal_the_unpacked():
    """The draws depend on the rows, not on which positions are scored."""
    hidden, table, targets, seen = distinct_rows(6, b=4, length=12, items=60)
    targets = targets.at[:, :3].set(0)  # left padding, as a batch has it
    positions = jnp.asarray(target_positions(np.asarray(targets), quantum=7))
    loss = next_item_loss("sampled_softmax", 20, sampler="uniform")
    key = jax.random.key(2)
    packed = grads(lambda h, t: loss(h, t, targets, key, positions=positions, seen=seen), hidden, table)
    unpacked = grads(lambda h, t: loss(h, t, targets, key, seen=seen), hidden, table)
    np.testing.assert_allclose(packed[0], unpacked[0], rtol=1e-6)
    for g, w in zip(packed[1], unpacked[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)


def test_a_run_with_the_uniform_sampler(tiny_config, tmp_path):
    tiny_config.loss.name, tiny_config.loss.sampler, tiny_config.loss.num_negatives = "sampled_softmax", "uniform", 30
    results = train_and_evaluate(tiny_config, tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
    assert np.isfinite(results["test"]["full"]["NDCG@10"])
