"""Every config value is checked before data loading: one line naming the key, exit code 2, nothing written."""

import jax
import pytest
from tiny_configs import TINY, tiny_overrides

from recattn_jax.config import to_config
from recattn_jax.config_checks import check_backend, check_config
from recattn_jax.errors import ConfigError

BAD_VALUES = [
    ("model", "dropout", 1.5, "model.dropout=1.5 must lie in [0.0, 1.0)"),
    ("model", "dropout", -0.1, "model.dropout=-0.1 must lie in [0.0, 1.0)"),
    ("model", "blocks", -1, "model.blocks=-1 must be at least 1"),
    ("model", "blocks", 0, "model.blocks=0 must be at least 1"),
    ("model", "hidden", 0, "model.hidden=0 must be at least 1"),
    ("model", "hidden", 15, "model.hidden=15 is not divisible by model.heads=2"),
    ("train", "lr", -1e-3, "train.lr=-0.001 must lie in (0.0, inf)"),
    ("train", "lr", 0.0, "train.lr=0.0 must lie in (0.0, inf)"),
    ("train", "lr", float("nan"), "train.lr=nan must be a finite number"),
    ("train", "lr", float("inf"), "train.lr=inf must be a finite number"),
    ("train", "max_steps", 0, "train.max_steps=0 must be at least 1"),
    ("eval", "seed", -1, "eval.seed=-1 must be at least 0"),
    ("train", "batch_size", 0, "train.batch_size=0 must be at least 1"),
    ("train", "patience", -1, "train.patience=-1 must be at least 0"),
    ("train", "optimizer", "sgd", "train.optimizer='sgd'; choose one of ['adam', 'adamw']"),
    ("eval", "ks", [1, 5], "eval.ks=[1, 5] must include 10: model selection and early stopping use valid NDCG@10"),
    ("eval", "ks", [0, 10], "eval.ks=0 must be at least 1"),
    (
        "eval",
        "num_negatives",
        0,
        "eval.num_negatives=0 must be at least 1 (with no negative every sampled metric is 1.0); "
        "set eval.sampled=false to skip the sampled protocol",
    ),
    (
        "kernel",
        "backend",
        "fast",
        "kernel.backend='fast': unknown attention backend 'fast'; choose one of: "
        "auto, reference, xla, triton, interpret",
    ),
]


@pytest.mark.parametrize(("group", "key", "value", "message"), BAD_VALUES)
def test_bad_value_is_one_line_naming_the_key(group, key, value, message):
    config = to_config(TINY)
    setattr(getattr(config, group), key, value)
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert str(error.value) == message


def test_tiny_config_passes():
    check_config(to_config(TINY))


def test_unsampled_eval_needs_no_negatives():
    config = to_config(TINY)
    config.eval.sampled, config.eval.num_negatives = False, 0
    check_config(config)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="triton runs on a GPU")
def test_triton_backend_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match=r"^kernel\.backend='triton': backend 'triton' needs a CUDA GPU"):
        check_backend("triton")


def test_cli_bad_value_exit_2_one_line_nothing_written(cli, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = cli("experiments.train", *tiny_overrides(), "model.hidden=0", f"hydra.run.dir={run_dir}")
    assert code == 2
    assert err.strip().splitlines() == ["error: model.hidden=0 must be at least 1"]
    assert "Traceback" not in out + err
    assert not (run_dir / "config.yaml").exists()


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="triton runs on a GPU")
def test_cli_triton_without_gpu_before_data(cli, tmp_path):
    code, _, err = cli("experiments.train", *tiny_overrides(), "kernel.backend=triton", f"hydra.run.dir={tmp_path}")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: kernel.backend='triton': backend 'triton' needs a CUDA GPU")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.hidden=abc",
            "error: Error merging override model.hidden=abc; Value 'abc' of type 'str' could not be "
            "converted to Integer",
        ),
        (
            "model.hiden=3",
            "error: Could not override 'model.hiden'; To append to your config use +model.hiden=3; Key "
            "'hiden' not in 'ModelConfig'",
        ),
    ],
)
def test_cli_hydra_errors_are_one_line_exit_2(cli, tmp_path, override, message):
    code, out, err = cli("experiments.train", override, f"hydra.run.dir={tmp_path}")
    assert (code, err) == (2, message + "\n")
    assert out == ""


def test_cli_recommend_without_run_dir(cli):
    code, _, err = cli("experiments.recommend")
    assert (code, err) == (2, "error: run_dir=DIR is required: the directory of a finished training run\n")


def test_cli_run_dir_that_cannot_be_made_is_one_line(cli, tmp_path):
    """Hydra fails making the run directory (under a file) and prints a traceback: the one line is its
    last line, the reason, not the traceback's first lines."""
    (tmp_path / "file").write_text("")
    run_dir = tmp_path / "file" / "run"
    code, out, err = cli("experiments.train", *tiny_overrides(), f"hydra.run.dir={run_dir}")
    assert code == 2 and "Traceback" not in out + err
    assert err.strip().splitlines() == [f"error: NotADirectoryError: [Errno 20] Not a directory: '{run_dir}'"]
