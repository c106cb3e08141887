"""The stages of `train_and_evaluate`: where the schedule cuts segments, and every way out closes what it opened."""

import json

import pytest

from recattn_jax.config import TrainConfig
from recattn_jax.errors import TrainingDiverged
from recattn_jax.train import checkpoint, logs
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.run_state import RunPosition, RunStopped
from recattn_jax.train.schedule import Schedule


def at(epoch: int, epoch_step: int, step: int) -> RunPosition:
    return RunPosition(epoch=epoch, in_epoch=True, epoch_step=epoch_step, step=step)


def test_segments_end_at_a_checkpoint_the_stop_or_the_epoch_end():
    train = TrainConfig(epochs=3, batch_size=10, max_steps=None, ckpt_every_steps=3, stop_after_steps=7)
    schedule = Schedule.of(train, num_rows=35, start_step=0)
    assert (schedule.steps_per_epoch, schedule.total_steps) == (4, 12)
    assert schedule.segment_steps(at(1, 0, 0)) == 3  # to the checkpoint at step 3
    assert schedule.segment_steps(at(1, 3, 3)) == 1  # to the epoch's end
    assert schedule.segment_steps(at(2, 2, 6)) == 1  # to the stop at step 7
    assert [s for s in range(13) if schedule.checkpoints(s)] == [0, 3, 6, 9, 12]
    assert [s for s in range(13) if schedule.stops(s)] == list(range(7, 12))  # not once the run is complete
    assert Schedule.of(train, num_rows=35, start_step=7).stop_at is None  # a resumed run is past its stop


def test_max_steps_cuts_the_last_epoch_which_is_validated():
    train = TrainConfig(epochs=5, batch_size=10, max_steps=6, ckpt_every_steps=0, eval_every=4)
    schedule = Schedule.of(train, num_rows=40, start_step=0)
    assert schedule.total_steps == 6 and schedule.epoch_steps(at(2, 0, 4)) == 2
    assert schedule.segment_steps(at(2, 0, 4)) == 2 and not schedule.checkpoints(6)
    assert not schedule.validates(at(1, 4, 4))  # eval_every=4
    assert schedule.validates(at(2, 2, 6))  # the last step


@pytest.fixture
def closes(monkeypatch):
    """Counts RunLog closes; yields the checkpoint managers open before the run."""
    closed = []
    close = logs.RunLog.close
    monkeypatch.setattr(logs.RunLog, "close", lambda self: closed.append(self) or close(self))
    return closed, set(checkpoint._OPEN)


@pytest.mark.parametrize("way_out", ["stop", "divergence"])
def test_every_way_out_closes_the_checkpoints_and_the_log(way_out, tiny_config, tmp_path, closes):
    closed_logs, open_before = closes
    if way_out == "stop":
        tiny_config.train.stop_after_steps, error = 1, RunStopped
    else:  # lr 1e30: step 1's weights overflow every score; the check before its checkpoint stops the run
        tiny_config.train.lr, tiny_config.train.ckpt_every_steps, error = 1e30, 1, TrainingDiverged
    with pytest.raises(error):
        train_and_evaluate(tiny_config, tmp_path)
    assert len(closed_logs) == 1 and closed_logs[0].file.closed
    assert set(checkpoint._OPEN) <= open_before  # the run's best/ and latest/ managers are closed


def test_every_record_is_on_disk_when_written(tiny_config, tmp_path):
    """A kill -9 between checkpoints must not take the training-loss records already written with it (they
    were buffered until the next evaluation): each record is in the file as soon as it is written."""
    log = logs.RunLog(tmp_path, tiny_config, commit="abc")
    try:
        log.train(step=1, epoch=1, loss=2.5, lr=1e-3, seconds=0.1)
        lines = (tmp_path / logs.METRICS_FILE).read_text().splitlines()
        assert [json.loads(line)["kind"] for line in lines] == ["start", "train"]
    finally:
        log.close()
