"""The 16-bit dropout layer: keep rate, unbiased scaling, determinism and its edge rates."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recattn_jax.layers.dropout import Dropout


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_keep_rate_and_mean_are_unbiased(rate):
    x = jnp.ones((256, 200, 50))
    y = np.asarray(Dropout(rate)(x, rngs=nnx.Rngs(dropout=0)))
    kept = y != 0
    # 2.56M draws: the kept share is within 5 standard deviations of 1 - rate
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / kept.size)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(rate / (1 - rate) / kept.size)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-4)


def test_deterministic_and_zero_rate_are_identities():
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(Dropout(0.3)(x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, rngs=nnx.Rngs(dropout=1)), x)


def test_rate_one_drops_everything_and_bad_rates_raise():
    assert not np.any(np.asarray(Dropout(1.0)(jnp.ones((4, 4)), rngs=nnx.Rngs(dropout=0))))
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout rate"):
            Dropout(rate)


def test_same_key_same_mask_other_key_other_mask():
    x = jnp.ones((64, 64))
    a, b = (np.asarray(Dropout(0.5)(x, rngs=nnx.Rngs(dropout=0))) for _ in range(2))
    c = np.asarray(Dropout(0.5)(x, rngs=nnx.Rngs(dropout=1)))
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.3
