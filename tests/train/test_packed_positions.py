"""Packed target positions: the CE and sampled-softmax losses on the packed positions equal the unpacked ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recattn_jax.data.batches import target_positions
from recattn_jax.losses import next_item_loss


def test_target_positions_cover_every_target_once_and_pad_to_the_quantum():
    targets = np.array([[0, 0, 3, 4], [0, 5, 6, 7], [0, 0, 0, 0]])
    positions = target_positions(targets, quantum=4)
    assert len(positions) == 8  # 5 targets, padded up to a multiple of 4
    flat = targets.reshape(-1)
    assert sorted(flat[positions][flat[positions] != 0]) == [3, 4, 5, 6, 7]
    assert np.all(flat[positions[5:]] == 0)  # the pad entries point at padding positions
    full = np.arange(1, 9).reshape(2, 4)
    np.testing.assert_array_equal(target_positions(full, quantum=3), np.arange(8))  # never more than B * L


@pytest.mark.parametrize("name", ["ce", "sampled_softmax"])
def test_packed_loss_and_gradients_equal_the_unpacked(name):
    rng = np.random.default_rng(0)
    b, length, d, items = 4, 12, 8, 30
    targets = rng.integers(1, items + 1, (b, length))
    targets[:, : rng.integers(0, length, b).max()] *= rng.integers(0, 2, (b, 1))  # some left padding
    hidden = jnp.asarray(rng.standard_normal((b, length, d)), jnp.float32)
    table = jnp.asarray(rng.standard_normal((items + 1, d)), jnp.float32)
    loss = next_item_loss(name, 5)
    positions = jnp.asarray(target_positions(targets, quantum=7))
    key = jax.random.key(0)
    plain = jax.jit(jax.value_and_grad(lambda h, t: loss(h, t, jnp.asarray(targets), key), argnums=(0, 1)))
    packed = jax.jit(
        jax.value_and_grad(lambda h, t: loss(h, t, jnp.asarray(targets), key, positions=positions), argnums=(0, 1))
    )
    plain, packed = plain(hidden, table), packed(hidden, table)
    if name == "ce":  # deterministic: exactly the same terms
        np.testing.assert_allclose(packed[0], plain[0], rtol=1e-5)
        for got, want in zip(packed[1], plain[1], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    else:  # in-batch negatives are drawn from the same targets, in another layout: same scale, finite grads
        assert np.isfinite(packed[0]) and abs(float(packed[0]) - float(plain[0])) < 0.5 * float(plain[0])
        assert all(np.all(np.isfinite(g)) for g in packed[1])
