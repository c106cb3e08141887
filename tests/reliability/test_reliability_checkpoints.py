"""Damaged checkpoints are one line; a damaged newest `latest/` step falls back to the older one; a sweep
with a truncated results.json names it and still summarises the good runs."""

import json
import shutil

import numpy as np
import pytest
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.data.load import load_split
from recattn_jax.errors import CheckpointError
from recattn_jax.recommend import load_run
from recattn_jax.sweep.aggregate import aggregate_sweep
from recattn_jax.train.checkpoint import LatestCheckpoint
from recattn_jax.train.step import build_training


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


def test_disk_full_while_writing_is_one_line(tmp_path, state_template, monkeypatch):
    latest = LatestCheckpoint(tmp_path / "latest")
    state = state_template()
    latest.save(1, state, {"step": 1})

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(latest.manager, "save", full)
    with pytest.raises(CheckpointError) as error:
        latest.save(2, state, {"step": 2})
    assert str(error.value) == (
        f"{tmp_path / 'latest'}: writing step 2 failed ([Errno 28] No space left on device); the steps written "
        "before it are intact"
    )
    assert latest.latest_step() == 1
    latest.close()


def test_resume_refuses_changed_data(tmp_path):
    from recattn_jax.errors import ConfigError
    from recattn_jax.train.run_dir import check_same_data, data_fingerprint

    config = to_config(TINY)
    before = data_fingerprint([np.array([1, 2, 3]), np.array([2, 3])])
    check_same_data(config, tmp_path, before, write=True)
    config.train.resume = True
    check_same_data(config, tmp_path, before, write=False)
    after = data_fingerprint([np.array([1, 2, 4]), np.array([2, 3])])  # same sizes, another item
    with pytest.raises(ConfigError) as error:
        check_same_data(config, tmp_path, after, write=False)
    assert str(error.value) == (
        f"train.resume=true in {tmp_path}: the data changed since the interrupted run (now 2 users, 5 interactions; "
        "then 2, 5): resume is impossible; start a new run in a new hydra.run.dir"
    )


@pytest.mark.slow  # two tiny trainings (about 25 s on 2 busy cores)
def test_resume_after_ctrl_c_is_exact(finished_run, tmp_path, monkeypatch):
    """Ctrl-C after step 2's loss, before its checkpoint: resuming from step 1 ends as the uninterrupted run."""
    from recattn_jax.train import schedule
    from recattn_jax.train.loop import train_and_evaluate

    config = to_config(TINY)
    config.train.ckpt_every_steps = 1
    check = schedule.check_losses

    def interrupt_at_step_2(losses, first_step, *args):
        if first_step == 1:
            raise KeyboardInterrupt
        check(losses, first_step, *args)

    monkeypatch.setattr(schedule, "check_losses", interrupt_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path)
    monkeypatch.setattr(schedule, "check_losses", check)
    config.train.resume = True
    resumed = train_and_evaluate(config, tmp_path)
    whole = json.loads((finished_run / "results.json").read_text())
    assert resumed["resumed_from"] == 1
    for key in ("valid", "test", "train_loss", "steps", "best_step", "history"):
        assert json.loads(json.dumps(resumed[key])) == whole[key], key


def test_aggregate_cli_on_an_empty_directory_is_one_line(tmp_path, capsys):
    from experiments.aggregate import main

    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}: no run directory (results.json or .hydra/overrides.yaml) under it\n"
    )
