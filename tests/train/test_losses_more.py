import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recattn_jax.errors import ConfigError
from recattn_jax.losses import (
    LOSSES,
    binary_cross_entropy,
    gbce_beta,
    generalised_binary_cross_entropy,
    in_batch_slots,
    next_item_loss,
    sampled_softmax,
)


def toy(seed=0, items=12, dim=8):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.normal(size=(4, 5, dim)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(items + 1, dim)), jnp.float32)
    targets = jnp.asarray(rng.integers(1, items + 1, (4, 5)), jnp.int32).at[:, :2].set(0)  # left padding
    return hidden, table, targets


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_decreases_on_a_toy_problem(name):
    hidden, table, targets = toy()
    loss_fn = next_item_loss(name, 4)
    params = {"hidden": hidden, "table": table}
    opt = optax.adam(0.05)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(p["hidden"], p["table"], targets, key))(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for i in range(60):
        params, state, loss = step(params, state, jax.random.key(i))
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_gbce_beta_ends():
    assert gbce_beta(4, 101, 0.0) == pytest.approx(1.0)
    assert gbce_beta(4, 101, 1.0) == pytest.approx(4 / 100)
    assert 4 / 100 < gbce_beta(4, 101, 0.5) < 1


def test_gbce_with_t_zero_is_bce_and_calibration_lowers_the_positive_term():
    hidden, table, targets = toy(1)
    key = jax.random.key(0)
    np.testing.assert_allclose(
        generalised_binary_cross_entropy(hidden, table, targets, key, 3, 0.0),
        binary_cross_entropy(hidden, table, targets, key, 3),
        rtol=1e-6,
    )
    assert generalised_binary_cross_entropy(hidden, table, targets, key, 3, 1.0) < binary_cross_entropy(
        hidden, table, targets, key, 3
    )


def test_sampled_softmax_never_uses_the_positive_or_padding_as_a_negative():
    hidden, table, _ = toy(2)
    same = jnp.zeros((4, 5), jnp.int32).at[:, 2:].set(7)  # every target is item 7: all draws are hits
    for logq in (True, False):
        assert float(sampled_softmax(hidden, table, same, jax.random.key(0), 8, logq)) == pytest.approx(0.0)


def test_sampled_softmax_matches_numpy_with_its_draws():
    hidden, table, targets = toy(3)
    key = jax.random.key(5)
    flat = np.asarray(targets).reshape(-1)
    present = flat != 0
    neg = flat[np.asarray(in_batch_slots(key, jnp.asarray(present), (4, 5, 6)))]
    assert np.all(neg != 0)
    freq = np.bincount(flat[present], minlength=table.shape[0]) / present.sum()
    h, t = np.asarray(hidden), np.asarray(table)
    expected = []
    for b, p in zip(*np.nonzero(np.asarray(targets)), strict=True):
        pos_item = int(targets[b, p])
        logits = [h[b, p] @ t[pos_item] - np.log(6 * freq[pos_item])]
        logits += [h[b, p] @ t[j] - np.log(6 * freq[j]) for j in neg[b, p] if j != pos_item]
        expected.append(np.log(np.sum(np.exp(logits))) - logits[0])
    np.testing.assert_allclose(sampled_softmax(hidden, table, targets, key, 6), np.mean(expected), rtol=1e-5)


def test_in_batch_slots_draw_every_present_slot_equally_and_nothing_else():
    present = np.zeros(40, bool)
    present[[1, 2, 7, 19, 20, 33]] = True
    draws = np.asarray(in_batch_slots(jax.random.key(3), jnp.asarray(present), (50, 120)))
    assert draws.shape == (50, 120)
    counts = np.bincount(draws.reshape(-1), minlength=40)
    assert np.all(counts[~present] == 0)
    expected = draws.size / present.sum()  # 1000 per slot; the binomial sd is about 29
    assert np.all(np.abs(counts[present] - expected) < 5 * np.sqrt(expected))
    assert np.all(np.asarray(in_batch_slots(jax.random.key(0), jnp.zeros(5, bool), (3,))) == 0)


def test_sampled_softmax_memory_grows_with_the_draws_not_with_their_square():
    """Drawing K negatives for each of P positions must not cost P * K * P (Gumbel noise over every slot):
    at ML-1M scale (batch 128, max_len 200, K = 100) that asked for a 410 GB allocation."""
    p, k, d = 2000, 100, 8
    step = jax.jit(jax.value_and_grad(lambda h, t, y, key: sampled_softmax(h, t, y, key, k), argnums=(0, 1)))
    args = (jnp.zeros((1, p, d)), jnp.zeros((50, d)), jnp.ones((1, p), jnp.int32), jax.random.key(0))
    memory = step.lower(*args).compile().memory_analysis()
    if memory is None:
        pytest.skip("this backend reports no memory analysis of compiled code")
    draws_and_gathers = p * k * (d + 2) * 4  # the [P, K, D] gather, its gradient, the draws, in bytes
    assert memory.temp_size_in_bytes < 10 * draws_and_gathers < p * k * p * 4


def test_bad_loss_configs():
    with pytest.raises(ConfigError, match="num_negatives"):
        next_item_loss("gbce", 0)
    with pytest.raises(ConfigError, match="gbce_t"):
        next_item_loss("gbce", 2, gbce_t=1.5)
    with pytest.raises(ConfigError, match=r"loss\.name"):
        next_item_loss("top1")
