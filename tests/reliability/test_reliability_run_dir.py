"""Run directories: a fresh run never mixes into a used one, resume needs a run, nothing is overwritten
before the inputs are valid, data paths are stored absolute."""

import dataclasses
import shutil

import pytest
from omegaconf import OmegaConf
from tiny_configs import TINY

from recattn_jax.cli import run_entry
from recattn_jax.config import to_config
from recattn_jax.errors import ConfigError, DataError
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.run_dir import resume_hint, with_resolved_paths


def test_fresh_run_refuses_a_used_directory(finished_run):
    before = (finished_run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError) as error:
        train_and_evaluate(to_config(TINY), finished_run)
    assert str(error.value) == (
        f"hydra.run.dir={finished_run} already holds a run (checkpoints/, latest/, results.json): continue it "
        "with train.resume=true, or choose a new hydra.run.dir"
    )
    assert (finished_run / "config.yaml").read_bytes() == before


def test_resume_with_nothing_to_resume(tmp_path):
    config = to_config(TINY)
    config.train.resume = True
    with pytest.raises(ConfigError) as error:
        train_and_evaluate(config, tmp_path)
    assert str(error.value) == (
        f"train.resume=true: nothing to resume in {tmp_path} (no config.yaml, no checkpoint in latest/); point "
        "hydra.run.dir at the interrupted run, or drop train.resume to start a new run"
    )


def test_bad_data_overwrites_nothing(finished_run, tmp_path):
    """A rerun that fails on its data leaves the directory's config.yaml as it was."""
    shutil.copy(finished_run / "config.yaml", tmp_path / "config.yaml")  # a run that stopped before a checkpoint
    before = (tmp_path / "config.yaml").read_bytes()
    bad = tmp_path / "ml.txt"
    bad.write_text("1 2\n1 x\n")
    config = to_config({**TINY, "data": {"name": "sasrec_txt", "path": str(bad)}})
    with pytest.raises(DataError, match="ml.txt line 2: item id 'x' is not an integer"):
        train_and_evaluate(config, tmp_path)
    assert (tmp_path / "config.yaml").read_bytes() == before


def test_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "ml.txt").write_text("1 2\n")
    monkeypatch.chdir(tmp_path)
    config = with_resolved_paths(to_config({"data": {"name": "sasrec_txt", "path": "ml.txt"}}))
    assert config.data.path == str(tmp_path.resolve() / "ml.txt")


def test_saved_config_of_a_run_is_resolved(finished_run):
    saved = OmegaConf.load(finished_run / "config.yaml")
    assert saved.data.name == "synthetic" and saved.data.path is None  # nothing to resolve for synthetic data


def test_interrupt_is_one_line_with_how_to_resume(finished_run, capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        run_entry(interrupted, on_interrupt=lambda: resume_hint(finished_run))
    assert stop.value.code == 130
    assert capsys.readouterr().err == (
        f"interrupted (Ctrl-C); continue from step 2 with train.resume=true hydra.run.dir={finished_run}\n"
    )


def test_sigterm_ends_cleanly(capsys):
    import os
    import signal
    import time

    def terminated():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stop:
            run_entry(terminated, on_interrupt=lambda: "continue with train.resume=true")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.code == 143
    assert capsys.readouterr().err == "terminated (SIGTERM); continue with train.resume=true\n"


def test_cli_fresh_run_into_a_used_directory_exit_2(cli, run_copy):
    from tiny_configs import tiny_overrides

    results = (run_copy / "results.json").read_bytes()
    code, _, err = cli("experiments.train", *tiny_overrides(), f"hydra.run.dir={run_copy}")
    assert code == 2 and err.strip().splitlines() == [
        f"error: hydra.run.dir={run_copy} already holds a run (checkpoints/, latest/, results.json): continue it "
        "with train.resume=true, or choose a new hydra.run.dir"
    ]
    assert (run_copy / "results.json").read_bytes() == results


def test_resume_with_an_unreadable_config_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    config = to_config(TINY)
    config.train.resume = True
    with pytest.raises(ConfigError, match=r"^train\.resume=true: .*config\.yaml cannot be read \("):
        train_and_evaluate(config, tmp_path)


def test_os_error_is_one_line(capsys):
    def full():
        raise OSError(28, "No space left on device")

    with pytest.raises(SystemExit) as stop:
        run_entry(full)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: [Errno 28] No space left on device\n"


def test_resume_may_lengthen_patience_but_not_change_training(run_copy):
    """A run stopped by patience resumes with a longer one (the path to the stop is the same); a key that
    changes training is refused, named with its old and new value."""
    from recattn_jax.train.run_state import check_resumable

    saved = to_config(OmegaConf.to_container(OmegaConf.load(run_copy / "config.yaml")))
    saved.train.resume = True
    saved.train.patience = saved.train.patience + 20
    check_resumable(saved, run_copy)  # accepted
    old_lr = saved.train.lr
    saved.train.lr = old_lr * 2
    with pytest.raises(ConfigError) as error:
        check_resumable(saved, run_copy)
    assert str(error.value) == (
        f"train.resume=true in {run_copy}: the config differs from the interrupted run's: "
        f"train.lr={old_lr * 2!r} (was {old_lr!r})"
    )


def test_resume_may_not_change_the_planned_steps_of_a_cosine_schedule(run_copy):
    """train.epochs is free on resume, except under a cosine schedule, whose decay spans the planned steps:
    changing it would re-time the learning rate under the steps already trained."""
    from recattn_jax.train.run_state import check_resumable

    config_file = run_copy / "config.yaml"
    saved = to_config(OmegaConf.to_container(OmegaConf.load(config_file)))
    saved.train.resume = True
    saved.train.epochs += 1
    check_resumable(saved, run_copy)  # a constant learning rate: accepted
    saved.train.lr_schedule = "cosine"
    OmegaConf.save(
        OmegaConf.structured(
            dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=saved.train.epochs - 1))
        ),
        config_file,
    )
    with pytest.raises(ConfigError) as error:
        check_resumable(saved, run_copy)
    assert str(error.value) == (
        f"train.resume=true in {run_copy}: train.epochs={saved.train.epochs} (was {saved.train.epochs - 1}) would "
        "re-time train.lr_schedule=cosine, which decays over the planned steps, under the steps already trained; "
        "resume with the interrupted run's value"
    )
    saved.train.epochs -= 1
    check_resumable(saved, run_copy)  # the same plan: accepted
