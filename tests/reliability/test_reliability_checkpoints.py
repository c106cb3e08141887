"""Damaged checkpoints are one line; a damaged newest `latest/` step falls back to the older one; a sweep
with a truncated results.json names it and still summarises the good runs."""

import json
import shutil

import pytest
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.data.load import load_split
from recattn_jax.errors import CheckpointError
from recattn_jax.recommend import load_run
from recattn_jax.sweep.aggregate import aggregate_sweep
from recattn_jax.train.checkpoint import LatestCheckpoint
from recattn_jax.train.loop import build_training


def damage(step_dir, how):
    """Truncate or overwrite every array file of an orbax step folder, or remove its metadata."""
    if how == "no metadata":
        for path in step_dir.rglob("_METADATA"):
            path.unlink()
        return
    for path in step_dir.rglob("*"):
        if path.is_file() and path.parent.name == "d":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\x00garbage" * 8)


@pytest.mark.parametrize("how", ["truncated", "corrupt", "no metadata"])
def test_damaged_best_checkpoint_is_one_line(run_copy, how):
    damage(run_copy / "checkpoints" / "2", how)
    with pytest.raises(CheckpointError) as error:
        load_run(run_copy)
    message = str(error.value)
    assert "\n" not in message and len(message) < 600
    assert message.startswith(f"{run_copy / 'checkpoints' / '2'}: the checkpoint cannot be read (truncated, corrupt")


@pytest.fixture(scope="module")
def state_template():
    config = to_config(TINY)
    split = load_split(config.data)
    return lambda: build_training(config, split.data.num_items)[1]


def test_damaged_latest_falls_back_to_the_older_step(run_copy, state_template, capsys):
    damage(run_copy / "latest" / "2", "corrupt")
    latest = LatestCheckpoint(run_copy / "latest")
    _, position = latest.restore(state_template())
    latest.close()
    assert position["step"] == 1
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {run_copy / 'latest'}: step 2: ") and err.endswith(
        "resuming from the older step 1\n"
    )


def test_every_latest_step_damaged_is_one_line(run_copy, state_template):
    damage(run_copy / "latest" / "2", "truncated")
    damage(run_copy / "latest" / "1", "corrupt")
    latest = LatestCheckpoint(run_copy / "latest")
    with pytest.raises(CheckpointError) as error:
        latest.restore(state_template())
    latest.close()
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"{run_copy / 'latest'}: no checkpoint can be read (truncated, corrupt")


def test_aggregate_names_a_truncated_results_file_and_summarises_the_rest(finished_run, tmp_path, capsys):
    for name in ("0", "1"):
        (tmp_path / name).mkdir()
        shutil.copy(finished_run / "results.json", tmp_path / name / "results.json")
    text = (tmp_path / "1" / "results.json").read_text()
    (tmp_path / "1" / "results.json").write_text(text[: len(text) // 2])
    written = aggregate_sweep(tmp_path)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / '1' / 'results.json'}: unreadable (")
    assert err.endswith("left out of the summary\n")
    md = written["md"].read_text()
    valid = json.loads(text)["valid"]["full"]["NDCG@10"]
    assert "2 runs" in md and f"{valid:.4f} ± 0.0000" in md and "| 1 |" in md  # one good run summarised
