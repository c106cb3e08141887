"""train.ema_decay: the moving average of the weights that validation, selection, checkpoints and test use."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_resume import stop_then_resume, without_timing

from recattn_jax.config import TrainConfig
from recattn_jax.config_checks import check_config
from recattn_jax.errors import ConfigError
from recattn_jax.train.checkpoint import BestCheckpoint
from recattn_jax.train.ema import averaged_weights, ema_of_params, with_averaged_weights
from recattn_jax.train.logs import read_metrics
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.run_setup import prepare_run
from recattn_jax.train.step import make_optimizer


def linear_and_optimizer(config: TrainConfig):
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    return model, nnx.Optimizer(model, make_optimizer(config), wrt=nnx.Param)


def take_steps(model, optimizer, steps: int) -> list[np.ndarray]:
    """`steps` optimizer steps on random gradients; the kernel after each (the first entry: before any)."""
    kernels = [np.asarray(model.kernel[...])]
    for key in jax.random.split(jax.random.key(1), steps):
        grads = nnx.state(model, nnx.Param)
        grads = jax.tree.map(lambda g, k=key: jax.random.normal(k, g.shape), grads)
        optimizer.update(model, grads)
        kernels.append(np.asarray(model.kernel[...]))
    return kernels


def test_the_average_follows_its_recurrence_over_adamw_steps():
    decay = 0.8
    config = TrainConfig(optimizer="adamw", weight_decay=0.01, grad_clip=1.0, ema_decay=decay)
    model, optimizer = linear_and_optimizer(config)
    kernels = take_steps(model, optimizer, 6)

    expected = kernels[0]  # the average starts at the initial weights
    for kernel in kernels[1:]:
        expected = decay * expected + (1 - decay) * kernel
    got = np.asarray(averaged_weights(optimizer.opt_state)["kernel"])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got, kernels[-1], atol=1e-4)  # an average, not the trained weights


def test_the_average_leaves_training_unchanged():
    plain_model, plain = linear_and_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.01))
    ema_model, with_ema = linear_and_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.01, ema_decay=0.9))
    np.testing.assert_array_equal(take_steps(plain_model, plain, 4)[-1], take_steps(ema_model, with_ema, 4)[-1])
    assert averaged_weights(plain.opt_state) is None


def test_the_averaged_model_is_a_copy_and_the_training_state_is_untouched():
    model, optimizer = linear_and_optimizer(TrainConfig(ema_decay=0.5))
    take_steps(model, optimizer, 3)
    graphdef, state = nnx.split((model, optimizer))
    trained = np.asarray(model.kernel[...])

    averaged = with_averaged_weights(*nnx.merge(graphdef, state))

    np.testing.assert_array_equal(averaged.kernel[...], averaged_weights(optimizer.opt_state)["kernel"])
    merged_again, _ = nnx.merge(graphdef, state)  # the state training goes on from
    np.testing.assert_array_equal(merged_again.kernel[...], trained)
    model_alone, no_average = linear_and_optimizer(TrainConfig())
    assert with_averaged_weights(model_alone, no_average) is model_alone


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, float("nan")])
def test_impossible_decays_are_refused(tiny_config, decay):
    tiny_config.train.ema_decay = decay
    with pytest.raises(ConfigError, match="train.ema_decay"):
        check_config(tiny_config)
    with pytest.raises(ValueError, match="decay"):
        ema_of_params(decay)


def test_ema_needs_the_params():
    transform = ema_of_params(0.5)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
        transform.update(params, transform.init(params))
    updates, state = transform.update({"w": jnp.ones(2)}, transform.init(params), params)
    np.testing.assert_allclose(state.ema["w"], 1.5)  # 0.5 * 1 + 0.5 * (1 + 1)
    np.testing.assert_array_equal(updates["w"], 1.0)
    assert optax.apply_updates(params, updates)["w"][0] == 2.0


def test_a_run_selects_and_tests_the_average(tiny_config, tmp_path):
    train = dataclasses.replace(tiny_config.train, epochs=2, max_steps=None, ckpt_every_steps=3, log_every_steps=2)
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(train, ema_decay=0.7))
    whole = train_and_evaluate(dataclasses.replace(config), tmp_path / "whole")
    plain = train_and_evaluate(dataclasses.replace(tiny_config, train=train), tmp_path / "plain")

    # the same training (the same losses, step by step), other weights validated, selected and tested
    assert [h["loss"] for h in whole["history"]] == [h["loss"] for h in plain["history"]]
    assert whole["train_loss"] == plain["train_loss"]
    assert [h["valid_full_NDCG@10"] for h in whole["history"]] != [h["valid_full_NDCG@10"] for h in plain["history"]]
    assert whole["test"] != plain["test"]
    # beside the average's, the log holds the trained weights' validation: the plain run's, to the last bit
    logged, plain_logged = (
        [r for r in read_metrics(tmp_path / name) if r["kind"] == "eval"] for name in ("whole", "plain")
    )
    assert [r["valid_trained_full_NDCG@10"] for r in logged] == [r["valid_full_NDCG@10"] for r in plain_logged]
    assert [r["valid_full_NDCG@10"] for r in logged] == [h["valid_full_NDCG@10"] for h in whole["history"]]
    assert not any(key.startswith("valid_trained") for key in plain_logged[0])

    # the best checkpoint holds the averaged weights the reported metrics were measured on
    run, state = prepare_run(config, tmp_path / "probe")
    model = run.model(state)
    with BestCheckpoint(tmp_path / "whole" / "checkpoints") as best:
        best.restore_into(model)
    assert run.evaluate(model, "test") == whole["test"]


@pytest.mark.slow  # the resume machinery itself is in the fast tier (test_resume.py)
def test_a_resumed_run_restores_the_average(tiny_config, tmp_path):
    train = dataclasses.replace(
        tiny_config.train, epochs=2, max_steps=None, ckpt_every_steps=3, log_every_steps=2, ema_decay=0.7
    )
    config = dataclasses.replace(tiny_config, train=train)
    whole = train_and_evaluate(dataclasses.replace(config), tmp_path / "whole")
    resumed = stop_then_resume(config, tmp_path / "resumed", [7])
    assert resumed["resumed_from"] == 6
    assert without_timing(resumed) == without_timing(whole)
