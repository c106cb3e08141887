"""Ctrl-C and SIGTERM during training save the latest state at the step they end, and resuming from it is exact."""

import dataclasses
import os
import signal

import pytest
from test_resume import without_timing

from recattn_jax.cli import Terminated
from recattn_jax.train.logs import read_metrics
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.run_dir import checkpoint_steps
from recattn_jax.train.stop_requests import StopRequests


@pytest.fixture(autouse=True)
def restore_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def test_a_signal_is_recorded_and_raised_when_the_block_ends():
    sentinel = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with StopRequests() as stops:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stops.requested()  # recorded; the block went on
    assert signal.getsignal(signal.SIGTERM) is sentinel


def test_a_second_signal_stops_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt) as stop:
        with StopRequests():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(2)
    assert reached == [1] and not isinstance(stop.value, Terminated)


def latest_step(workdir) -> int | None:
    steps = checkpoint_steps(workdir / "latest")
    return steps[-1] if steps else None


def signal_at(monkeypatch, where, attribute, signum, when):
    """Patch `where.attribute` to send `signum` to this process once `when(*args)` holds, after calling it."""
    original = getattr(where, attribute)
    sent = []

    def patched(*args, **kwargs):
        out = original(*args, **kwargs)
        if not sent and when(*args):
            sent.append(True)
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(where, attribute, patched)
    return sent


def resume_ends_as(whole: dict, config, workdir, step: int) -> None:
    """Resuming `workdir` starts at `step` and ends as the uninterrupted run `whole`, no evaluation logged twice."""
    config.train.resume = True
    resumed = train_and_evaluate(config, workdir)
    assert resumed["resumed_from"] == step
    assert without_timing(resumed) == without_timing(whole)
    evals = [r for r in read_metrics(workdir) if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]


def test_sigterm_mid_epoch_saves_that_step_and_resume_is_exact(two_epochs, tmp_path, monkeypatch):
    from recattn_jax.train.schedule import StepProgress

    whole = train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "whole")
    # step 5: mid-epoch 2, two steps after the checkpoint of step 3, which is all a kill would leave
    sent = signal_at(
        monkeypatch, StepProgress, "after_step", signal.SIGTERM, lambda self, pos, losses: pos.step + len(losses) == 5
    )
    with pytest.raises(Terminated):
        train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "stopped")
    monkeypatch.undo()
    assert sent and latest_step(tmp_path / "stopped") == 5
    assert not (tmp_path / "stopped" / "results.json").exists()
    resume_ends_as(whole, two_epochs, tmp_path / "stopped", 5)


@pytest.mark.slow  # two tiny trainings and a resume
def test_ctrl_c_during_a_validation_saves_after_it(two_epochs, tmp_path, monkeypatch):
    from recattn_jax.train.selection import Selection

    whole = train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "whole")
    sent = signal_at(monkeypatch, Selection, "validate", signal.SIGINT, lambda self, state, pos: pos.epoch == 1)
    with pytest.raises(KeyboardInterrupt) as stop:
        train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "stopped")
    monkeypatch.undo()
    assert sent and not isinstance(stop.value, Terminated)
    # saved at the epoch's end with its validation done: the resumed run neither trains nor validates it again
    assert latest_step(tmp_path / "stopped") == 4
    resume_ends_as(whole, two_epochs, tmp_path / "stopped", 4)
