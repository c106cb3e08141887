"""loss.temperature and loss.exclude_seen: full CE against a dense [B, L, I] reference, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.config_checks import check_config
from recattn_jax.data.batches import target_positions
from recattn_jax.errors import ConfigError
from recattn_jax.losses import full_cross_entropy, next_item_loss, unseen_cross_entropy
from recattn_jax.train.loop import train_and_evaluate


def dense_loss(hidden, table, targets, seen, temperature, exclude_seen):
    """Materialised logits; the excluded items of position t: seen[b, :t+1] but its target."""
    items = table.shape[0]
    logits = jnp.einsum("bld,id->bli", hidden, table) / temperature
    candidate = jnp.broadcast_to(jnp.arange(items) != 0, logits.shape)
    if exclude_seen:
        seen_so_far = jnp.cumsum(jax.nn.one_hot(seen, items), axis=1) > 0  # [B, L, I]
        candidate = candidate & ~(seen_so_far & (jnp.arange(items) != targets[..., None]))
    logits = jnp.where(candidate, logits, -jnp.inf)
    nll = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    mask = targets != 0
    return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.sum(mask)


def rows(seed, b=3, length=9, items=20, dim=8):
    """Sequences with repeated items (a small catalogue) and left padding; seen = inputs."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(1, items + 1, (b, length + 1))
    for r, pad in enumerate(rng.integers(0, length - 1, b)):
        seq[r, :pad] = 0
    hidden = jnp.asarray(rng.normal(size=(b, length, dim)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(items + 1, dim)), jnp.float32)
    return hidden, table, jnp.asarray(seq[:, 1:], jnp.int32), jnp.asarray(seq[:, :-1], jnp.int32)


def grads(f, hidden, table):
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(hidden, table)  # one compile, not one per operation


def assert_close(got, want):
    """fp32: the chunked log-sum-exp and (exclude_seen) the subtraction of the seen items' mass round
    differently from one dense softmax; gradients are O(0.1-1), so 1e-5 absolute is far below any bug."""
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.07, 3.0])
@pytest.mark.parametrize("items", [20, 300])  # 300 > the op's item chunk: the scan path
def test_temperature_matches_dense(temperature, items):
    hidden, table, targets, seen = rows(0, items=items)
    got = grads(lambda h, t: full_cross_entropy(h, t, targets, None, temperature), hidden, table)
    want = grads(lambda h, t: dense_loss(h, t, targets, seen, temperature, False), hidden, table)
    assert_close(got, want)


@pytest.mark.parametrize("temperature", [1.0, 0.05])  # 0.05: seen items hold nearly all the softmax mass
@pytest.mark.parametrize(("items", "chunk"), [(6, 128), (20, 8), (20, 128), (300, 128)])  # 6: most items repeat
def test_exclude_seen_matches_dense(temperature, items, chunk):
    hidden, table, targets, seen = rows(items, items=items)
    got = grads(lambda h, t: unseen_cross_entropy(h, t, targets, seen, temperature, chunk=chunk), hidden, table)
    want = grads(lambda h, t: dense_loss(h, t, targets, seen, temperature, True), hidden, table)
    assert_close(got, want)


def test_exclude_seen_keeps_a_seen_target_and_unrelated_seen_items():
    """`seen` need not be the shifted targets: targets that were seen before stay, once-seen items go."""
    hidden, table, targets, _ = rows(3, items=10)
    rng = np.random.default_rng(3)
    seen = jnp.asarray(rng.integers(0, 11, targets.shape), jnp.int32)
    assert np.any(np.cumsum(np.asarray(seen)[:, :, None] == np.asarray(targets)[:, None, :], 1) > 0)
    got = grads(lambda h, t: unseen_cross_entropy(h, t, targets, seen), hidden, table)
    assert_close(got, grads(lambda h, t: dense_loss(h, t, targets, seen, 1.0, True), hidden, table))
    nothing_seen = jnp.zeros_like(seen)  # only padding: the full CE
    np.testing.assert_allclose(
        unseen_cross_entropy(hidden, table, targets, nothing_seen), full_cross_entropy(hidden, table, targets, None)
    )


def test_packed_positions_equal_the_unpacked():
    hidden, table, targets, seen = rows(4, b=4, length=12, items=40)
    loss = next_item_loss("ce", temperature=0.2, exclude_seen=True)
    positions = jnp.asarray(target_positions(np.asarray(targets), quantum=7))
    packed = grads(lambda h, t: loss(h, t, targets, None, positions=positions, seen=seen), hidden, table)
    assert_close(packed, grads(lambda h, t: loss(h, t, targets, None, seen=seen), hidden, table))
    assert_close(packed, grads(lambda h, t: dense_loss(h, t, targets, seen, 0.2, True), hidden, table))


def test_seen_items_with_almost_all_the_mass_stay_exact():
    """Exp-logits of seen items 1e30 times the others': a subtraction from the whole catalogue's mass
    would be all cancellation; the masked log-sum-exp is not."""
    hidden, table, targets, seen = rows(5, items=50)
    table = table * jnp.where(jnp.isin(jnp.arange(table.shape[0]), seen), 10.0, 1.0)[:, None]
    got = grads(lambda h, t: unseen_cross_entropy(h, t, targets, seen), hidden, table)
    assert_close(got, grads(lambda h, t: dense_loss(h, t, targets, seen, 1.0, True), hidden, table))


def test_refusals(tiny_config):
    loss = next_item_loss("ce", exclude_seen=True)
    hidden, table, targets, _ = rows(0)
    with pytest.raises(ConfigError, match="exclude_seen"):
        loss(hidden, table, targets, None)  # a model with its own loss passes no rows' items
    with pytest.raises(ConfigError, match="ce only"):
        next_item_loss("bce", temperature=0.5)
    tiny_config.loss.temperature = 0.0
    with pytest.raises(ConfigError, match="loss.temperature"):
        check_config(tiny_config)
    tiny_config.loss.temperature, tiny_config.loss.name = 0.5, "sampled_softmax"
    with pytest.raises(ConfigError, match="ce only"):
        check_config(tiny_config)


@pytest.mark.slow  # tests/train/test_levers_run.py runs every lever at once in the fast tier
def test_a_run_with_both_loss_levers(tiny_config, tmp_path):
    tiny_config.loss.temperature, tiny_config.loss.exclude_seen = 0.5, True
    results = train_and_evaluate(tiny_config, tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
