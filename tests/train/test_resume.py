"""Exact resume: a run stopped as a crash would and resumed ends with the metrics of an uninterrupted one."""

import dataclasses

import numpy as np
import pytest

from recattn_jax.train.logs import read_metrics
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.run_state import RunStopped

TIMING_KEYS = {"train_seconds", "seconds_per_epoch", "resumed_from", "git_commit", "config"}


def without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in TIMING_KEYS}


def stop_then_resume(config, workdir, stops):
    for stop in stops:
        config.train.stop_after_steps = stop
        with pytest.raises(RunStopped):
            train_and_evaluate(config, workdir)
        config.train.resume = True
        assert not (workdir / "results.json").exists()
    config.train.stop_after_steps = None
    return train_and_evaluate(config, workdir)


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(two_epochs, tmp_path):
    whole = train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "whole")
    assert whole["steps"] == 8 and len(whole["history"]) == 2
    # stopped at 7 (mid-epoch 2, after epoch 1's evaluation, one step past the checkpoint of step 6):
    # the resumed run restores the model, optimizer, RNG, data order and best state of step 6
    resumed = stop_then_resume(two_epochs, tmp_path / "resumed", [7])
    assert resumed["resumed_from"] == 6
    assert without_timing(resumed) == without_timing(whole)
    records = read_metrics(tmp_path / "resumed")
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]  # no evaluation logged twice
    assert [r["valid_full_NDCG@10"] for r in evals] == [h["valid_full_NDCG@10"] for h in whole["history"]]
    assert records[-1]["kind"] == "end" and records[0]["git_commit"]


def test_loss_records_average_every_step_since_the_last_across_segments_and_a_resume(two_epochs, tmp_path):
    """With a record every 4 steps and a checkpoint every 3, each record spans a checkpoint (a segment's end)
    and the one at step 8 a resume from step 6: each is the float32 mean of its 4 steps' losses, read from a
    run that records every step (logging does not change training), and the resumed log equals the whole one."""

    def train_records(workdir):
        return [(r["step"], r["epoch"], r["loss"], r["lr"]) for r in read_metrics(workdir) if r["kind"] == "train"]

    every_step = dataclasses.replace(two_epochs, train=dataclasses.replace(two_epochs.train, log_every_steps=1))
    train_and_evaluate(every_step, tmp_path / "every_step")
    per_step = [loss for _, _, loss, _ in train_records(tmp_path / "every_step")]
    assert len(per_step) == 8
    two_epochs.train.log_every_steps = 4
    train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "whole")
    whole = train_records(tmp_path / "whole")
    assert [(step, loss) for step, _, loss, _ in whole] == [
        (4, float(np.mean(np.asarray(per_step[:4], np.float32)))),
        (8, float(np.mean(np.asarray(per_step[4:], np.float32)))),
    ]
    stop_then_resume(two_epochs, tmp_path / "resumed", [7])
    assert train_records(tmp_path / "resumed") == whole


@pytest.mark.slow
def test_resume_without_checkpoint_starts_over(two_epochs, tmp_path):
    two_epochs.train.ckpt_every_steps = 0
    two_epochs.train.epochs = 1
    whole = train_and_evaluate(dataclasses.replace(two_epochs), tmp_path / "whole")
    resumed = stop_then_resume(two_epochs, tmp_path / "resumed", [2])
    assert resumed["resumed_from"] is None and without_timing(resumed) == without_timing(whole)


def test_a_partial_checkpoint_is_never_taken_for_whole(tmp_path):
    """Orbax writes into `<step>.orbax-checkpoint-tmp-*` and renames when done; a kill leaves only the tmp dir."""
    import jax.numpy as jnp
    from flax import nnx

    from recattn_jax.train.checkpoint import LatestCheckpoint

    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    state = nnx.state(model)
    latest = LatestCheckpoint(tmp_path / "latest")
    latest.save(3, state, {"step": 3})
    latest.close()
    (tmp_path / "latest" / "7.orbax-checkpoint-tmp-1234567").mkdir()  # what a kill mid-write leaves
    latest = LatestCheckpoint(tmp_path / "latest")
    assert latest.latest_step() == 3
    restored, position = latest.restore(nnx.state(nnx.Linear(2, 2, rngs=nnx.Rngs(1))))
    assert position == {"step": 3} and jnp.array_equal(restored["kernel"][...], state["kernel"][...])
