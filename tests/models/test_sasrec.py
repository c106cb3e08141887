import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recattn_jax.config import ModelConfig
from recattn_jax.errors import ConfigError
from recattn_jax.models import build_model

# one compile per function and shape: run eagerly, every operation of the model would compile on its own
encode = nnx.jit(lambda model, seq: model.encode(seq))
user_representation = nnx.jit(lambda model, seq: model.user_representation(seq))


def sasrec(layer_norm="sasrec", **kw):
    config = ModelConfig(max_len=8, hidden=16, blocks=2, heads=2, dropout=0.0, layer_norm=layer_norm, **kw)
    return build_model(config, num_items=30, backend="reference", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("layer_norm", ["sasrec", "pre"])
def test_causal_later_items_never_change_earlier_positions(layer_norm):
    model = sasrec(layer_norm)
    rng = np.random.default_rng(0)
    seq = jnp.asarray(rng.integers(1, 31, (3, 8)), jnp.int32)
    base = encode(model, seq)
    for t in range(7):
        changed = seq.at[:, t + 1 :].set((seq[:, t + 1 :] % 30) + 1)
        out = encode(model, changed)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)
        assert not np.allclose(out[:, t + 1 :], base[:, t + 1 :], atol=1e-5)


def test_left_padding_does_not_leak_into_valid_positions():
    model = sasrec()
    seq = jnp.array([[0, 0, 0, 4, 5, 6, 7, 8]], jnp.int32)
    rep = user_representation(model, seq)
    # the padded slots' embeddings (item 0, positions 0..2) must not matter: perturb item 0's row
    state = nnx.state(model)
    emb = state["embedding"]["items"]["embedding"]
    emb[...] = emb[...].at[0].add(5.0)
    nnx.update(model, state)
    np.testing.assert_allclose(user_representation(model, seq), rep, atol=1e-5)
    assert np.all(np.isfinite(encode(model, jnp.zeros((1, 8), jnp.int32))))  # an all-padding row


def test_dropout_only_with_rngs():
    model = build_model(
        ModelConfig(max_len=8, hidden=16, blocks=1, heads=1, dropout=0.5), 30, backend="reference", rngs=nnx.Rngs(0)
    )
    seq = jnp.arange(1, 9, dtype=jnp.int32)[None]
    np.testing.assert_array_equal(model.encode(seq), model.encode(seq))
    a = model.encode(seq, rngs=nnx.Rngs(dropout=jax.random.key(1)))
    b = model.encode(seq, rngs=nnx.Rngs(dropout=jax.random.key(2)))
    assert not np.allclose(a, b)


def test_impossible_configs_raise():
    with pytest.raises(ConfigError, match="not divisible"):
        build_model(ModelConfig(hidden=10, heads=3), 30, backend="reference", rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="layer_norm"):
        sasrec("post")
    with pytest.raises(ConfigError, match="not registered"):
        build_model(ModelConfig(name="nope"), 30, backend="reference", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown attention backend"):
        build_model(ModelConfig(), 30, backend="cuda", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("layer_norm", ["sasrec", "pre"])
def test_user_representation_is_the_last_state_of_the_full_encoding(layer_norm):
    """user_representation computes only the last position in the last block: it must equal encode()[:, -1]."""
    config = ModelConfig(name="sasrec", max_len=9, hidden=16, blocks=2, heads=2, dropout=0.0, layer_norm=layer_norm)
    model = build_model(config, num_items=40, backend="reference", rngs=nnx.Rngs(3))
    seq = jnp.array([[0, 0, 0, 5, 6, 7, 8, 9, 1], [3, 4, 5, 6, 7, 8, 9, 10, 11], [0] * 8 + [2], [0] * 9], jnp.int32)
    np.testing.assert_allclose(user_representation(model, seq), encode(model, seq)[:, -1], rtol=1e-5, atol=1e-5)
