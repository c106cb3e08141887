import json

import numpy as np
import pytest

from recattn_jax.config import to_config
from recattn_jax.errors import ConfigError
from recattn_jax.train.loop import train_and_evaluate


def test_two_steps_then_evaluate(tiny_config, tmp_path):
    results = train_and_evaluate(tiny_config, tmp_path)
    assert results["steps"] == 2 and results["epochs"] == 1 and np.isfinite(results["train_loss"])
    for split in ("valid", "test"):
        for protocol in ("full", "sampled"):
            metrics = results[split][protocol]
            assert set(metrics) == {f"{m}@{k}" for m in ("HR", "NDCG") for k in (1, 5, 10, 20)} | {"MRR"}
            assert 0 <= metrics["NDCG@10"] <= metrics["HR@10"] <= metrics["HR@20"] <= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test"]["full"]["NDCG@10"] == results["test"]["full"]["NDCG@10"]
    assert saved["config"]["model"]["hidden"] == 16
    assert (tmp_path / "config.yaml").exists() and any((tmp_path / "checkpoints").iterdir())


def test_deterministic_for_a_seed(tiny_config, tmp_path):
    a = train_and_evaluate(tiny_config, tmp_path / "a")
    b = train_and_evaluate(tiny_config, tmp_path / "b")
    assert a["train_loss"] == b["train_loss"] and a["test"] == b["test"]


def test_bce_loss_trains(tiny_config, tmp_path):
    tiny_config.loss.name = "bce"
    assert np.isfinite(train_and_evaluate(tiny_config, tmp_path)["train_loss"])


def test_learning_beats_popularity_scale(tmp_path):
    """A few epochs on a sequential synthetic set reach far above a random ranking."""
    config = to_config(
        {
            "data": {"synthetic": {"num_users": 300, "num_items": 100, "mean_length": 20, "max_length": 60}},
            "model": {"max_len": 20, "hidden": 32, "blocks": 1, "heads": 1, "dropout": 0.1},
            "train": {"epochs": 8, "batch_size": 64, "progress": False, "lr": 0.005},
            "eval": {"sampled": False},
        }
    )
    results = train_and_evaluate(config, tmp_path)
    assert results["test"]["full"]["HR@10"] > 3 * 10 / 80  # random: about 10 of ~80 unseen items


def test_impossible_config_is_reported(tiny_config, tmp_path):
    tiny_config.train.batch_size = 0
    with pytest.raises(ConfigError, match=r"train\.batch_size=0"):
        train_and_evaluate(tiny_config, tmp_path)


def test_too_many_sampled_negatives_is_a_config_error(tiny_config, tmp_path):
    tiny_config.eval.num_negatives = 50  # the tiny catalogue has 50 items
    with pytest.raises(ConfigError, match=r"eval\.num_negatives=50"):
        train_and_evaluate(tiny_config, tmp_path)
