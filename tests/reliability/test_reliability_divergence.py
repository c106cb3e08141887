"""A non-finite loss, parameter or metric stops the run at once: one line, exit 2, no best checkpoint, no metric."""

import jax.numpy as jnp
import pytest
from tiny_configs import tiny_overrides

from recattn_jax.errors import TrainingDiverged
from recattn_jax.train.divergence import check_losses, check_metrics, check_params
from recattn_jax.train.run_dir import checkpoint_steps

ADVICE = "nothing of this run is reported or kept as best; try a lower train.lr (now 0.1)"


def test_first_non_finite_loss_is_named_with_its_step():
    check_losses([1.0, 2.0], 0, 1, 0.1)
    with pytest.raises(TrainingDiverged) as error:
        check_losses([1.0, float("inf"), float("nan")], 4, 2, 0.1)
    assert str(error.value) == f"training diverged: the loss is inf at step 6 (epoch 2); {ADVICE}"


def test_non_finite_parameters_or_optimizer_state():
    check_params({"w": jnp.ones(3), "step": jnp.array(3)}, 3, 1, 0.1)
    with pytest.raises(TrainingDiverged) as error:
        check_params({"w": jnp.ones(3), "mu": jnp.array([0.0, jnp.nan])}, 3, 1, 0.1)
    message = "training diverged: the parameters hold NaN or infinite values after step 3 (epoch 1)"
    assert str(error.value) == f"{message}; {ADVICE}"


def test_non_finite_metric():
    with pytest.raises(TrainingDiverged) as error:
        check_metrics({"full": {"NDCG@10": 0.5}, "sampled": {"HR@1": float("nan")}}, "valid", 8, 2, 0.1)
    assert str(error.value) == f"training diverged: valid sampled HR@1 is nan after step 8 (epoch 2); {ADVICE}"


@pytest.mark.slow  # one tiny training (about 11 s on 2 busy cores)
def test_huge_lr_stops_before_the_first_checkpoint(cli, tmp_path):
    """lr 1e30: step 1's loss is finite but its weights (about 1e30) overflow every score; the check before
    step 1's checkpoint stops the run: nothing is saved, evaluated or reported."""
    code, out, err = cli(
        "experiments.train", *tiny_overrides(), "train.lr=1e30", "train.ckpt_every_steps=1", f"hydra.run.dir={tmp_path}"
    )
    assert code == 2, err
    assert err.strip().splitlines() == [
        "error: training diverged: the model's scores are NaN or infinite (parameters too large) after step 1 "
        "(epoch 1); nothing of this run is reported or kept as best; try a lower train.lr (now 1e+30)"
    ]
    assert "NDCG" not in out and not (tmp_path / "results.json").exists()
    assert checkpoint_steps(tmp_path / "checkpoints") == [] and checkpoint_steps(tmp_path / "latest") == []


def test_finite_parameters_with_overflowing_scores_are_caught():
    """lr 1e30 with one step per epoch: the weights are finite (about 1e30) but every score overflows to NaN."""
    import jax
    from flax import nnx
    from tiny_configs import TINY

    from recattn_jax.config import to_config
    from recattn_jax.data.load import load_split
    from recattn_jax.train.divergence import FiniteCheck
    from recattn_jax.train.step import build_training

    config = to_config(TINY)
    split = load_split(config.data)
    graphdef, state, _, _ = build_training(config, split.data.num_items)
    check = FiniteCheck(graphdef, split, config.model.max_len, lr=0.1)
    check(state, 1, 1)
    huge = jax.tree.map(lambda x: x * 1e30 if jax.numpy.issubdtype(x.dtype, jax.numpy.floating) else x, state)
    with pytest.raises(TrainingDiverged) as error:
        check(huge, 1, 1)
    assert str(error.value) == (
        f"training diverged: the model's scores are NaN or infinite (parameters too large) after step 1 (epoch 1); "
        f"{ADVICE}"
    )
    nan = jax.tree.map(lambda x: x * jax.numpy.nan if jax.numpy.issubdtype(x.dtype, jax.numpy.floating) else x, state)
    with pytest.raises(TrainingDiverged, match="the parameters hold NaN or infinite values after step 1"):
        check(nan, 1, 1)
    assert isinstance(state, nnx.State)
