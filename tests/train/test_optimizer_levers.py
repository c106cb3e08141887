"""train.grad_clip, train.warmup_steps, train.lr_schedule: the updates make_optimizer applies."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recattn_jax.config import TrainConfig
from recattn_jax.config_checks import check_config
from recattn_jax.errors import ConfigError
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.lr_schedule import learning_rate
from recattn_jax.train.step import make_optimizer


def params_and_grads(steps=5, scale=1.0):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "b": jnp.asarray(rng.normal(size=3), jnp.float32)}
    draw = lambda p: jnp.asarray(scale * rng.normal(size=p.shape), jnp.float32)  # noqa: E731
    grads = [jax.tree.map(draw, params) for _ in range(steps)]
    return params, grads


def updates_of(optimizer, params, grads):
    state, out = optimizer.init(params), []
    for g in grads:
        update, state = optimizer.update(g, state, params)
        params = optax.apply_updates(params, update)
        out.append(update)
    return out


def assert_same_updates(a, b, **tolerance):
    for x, y in zip(a, b, strict=True):
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tolerance), x, y)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_defaults_are_the_plain_optimizer(name):
    config = TrainConfig(optimizer=name, weight_decay=0.01)
    assert learning_rate(config) == config.lr  # a float: the optimizer state has no schedule count
    params, grads = params_and_grads()
    plain = (
        optax.adam(config.lr, b1=config.beta1, b2=config.beta2)
        if name == "adam"
        else optax.adamw(config.lr, b1=config.beta1, b2=config.beta2, weight_decay=0.01)
    )
    got = updates_of(make_optimizer(config, 100), params, grads)
    assert_same_updates(got, updates_of(plain, params, grads), rtol=0)


def test_grad_clip_scales_large_gradients_to_the_global_norm():
    config = TrainConfig(grad_clip=0.5)
    params, grads = params_and_grads(scale=10.0)

    def clipped(g):
        norm = math.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(g)))
        assert norm > 0.5
        return jax.tree.map(lambda x: x * (0.5 / norm), g)

    plain = optax.adam(config.lr, b1=config.beta1, b2=config.beta2)
    got = updates_of(make_optimizer(config), params, grads)
    assert_same_updates(got, updates_of(plain, params, [clipped(g) for g in grads]), rtol=1e-5, atol=1e-8)
    small, _ = params_and_grads(scale=1e-3)  # under the norm: untouched
    assert_same_updates(
        updates_of(make_optimizer(TrainConfig(grad_clip=1e3)), params, [small]),
        updates_of(plain, params, [small]),
        rtol=1e-6,
    )


def test_warmup_then_cosine_values():
    config = TrainConfig(lr=2e-3, warmup_steps=4, lr_schedule="cosine")
    lr = learning_rate(config, total_steps=14)
    expected = [2e-3 * s / 4 for s in range(4)] + [1e-3 * (1 + math.cos(math.pi * s / 10)) for s in range(11)]
    np.testing.assert_allclose([float(lr(s)) for s in range(15)], expected, rtol=1e-5, atol=1e-9)
    constant = learning_rate(TrainConfig(lr=2e-3, warmup_steps=4))
    np.testing.assert_allclose([float(constant(s)) for s in (0, 2, 4, 100)], [0, 1e-3, 2e-3, 2e-3], rtol=1e-6)
    cosine = learning_rate(TrainConfig(lr=2e-3, lr_schedule="cosine"), total_steps=10)
    np.testing.assert_allclose([float(cosine(s)) for s in (0, 5, 10)], [2e-3, 1e-3, 0], atol=1e-9)


def test_the_optimizer_follows_the_schedule():
    config = TrainConfig(warmup_steps=2, lr_schedule="cosine", grad_clip=1.0)
    params, grads = params_and_grads(steps=6)
    schedule = learning_rate(config, 6)
    reference = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule, b1=config.beta1, b2=config.beta2))
    got = updates_of(make_optimizer(config, 6), params, grads)
    assert_same_updates(got, updates_of(reference, params, grads), rtol=0)
    assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(got[0]))  # warmup starts at lr 0
    assert float(jnp.abs(got[2]["w"]).max()) > 0


def test_impossible_values_are_refused(tiny_config):
    with pytest.raises(ConfigError, match="total steps"):
        make_optimizer(TrainConfig(lr_schedule="cosine"))
    with pytest.raises(ConfigError, match="warmup_steps"):
        make_optimizer(TrainConfig(lr_schedule="cosine", warmup_steps=10), total_steps=10)
    for key, value, match in (
        ("grad_clip", 0.0, "grad_clip"),
        ("warmup_steps", -1, "warmup_steps"),
        ("lr_schedule", "linear", "lr_schedule"),
    ):
        config = tiny_config
        old = getattr(config.train, key)
        setattr(config.train, key, value)
        with pytest.raises(ConfigError, match=match):
            check_config(config)
        setattr(config.train, key, old)


@pytest.mark.slow  # tests/train/test_levers_run.py runs every lever at once in the fast tier
def test_a_run_with_every_optimizer_lever(tiny_config, tmp_path):
    t = tiny_config.train
    t.optimizer, t.weight_decay, t.grad_clip, t.warmup_steps, t.lr_schedule = "adamw", 0.01, 5.0, 1, "cosine"
    results = train_and_evaluate(tiny_config, tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
