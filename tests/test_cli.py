"""The command-line entry points end to end, as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
from tiny_configs import tiny_overrides

from recattn_jax.data.load import PROJECT_ROOT
from recattn_jax.recommend import load_run, recommend
from recattn_jax.train.logs import read_metrics


def run(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def test_train_cli_writes_results(trained_run):
    stdout = (trained_run.parent / "trained_run.stdout").read_text()
    assert "test/full" in stdout and "NDCG@10" in stdout
    results = json.loads((trained_run / "results.json").read_text())
    assert set(results) >= {"valid", "test", "train_loss", "epochs", "train_seconds", "config"}
    assert set(results["test"]) == {"full", "sampled"} and "NDCG@10" in results["test"]["sampled"]


def test_metrics_jsonl_records_every_step_the_evaluation_and_the_commit(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    records = read_metrics(trained_run)
    assert [r["kind"] for r in records] == ["start", *["train"] * results["steps"], "eval", "end"]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, results["steps"] + 1))
    assert all(r["lr"] == results["config"]["train"]["lr"] for r in train)
    # one evaluation, so the best state's valid metrics are the logged ones; the pass's wall time is logged
    evaluation = records[-2]
    assert evaluation["step"] == results["steps"]
    assert evaluation["valid_full_NDCG@10"] == results["valid"]["full"]["NDCG@10"]
    assert 0 < evaluation["eval_seconds"] < 60
    assert records[0]["git_commit"] and results["git_commit"] == records[0]["git_commit"]
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        assert not (trained_run / "tensorboard").exists()
    else:
        assert any(p.name.startswith("events.out.tfevents") for p in (trained_run / "tensorboard").iterdir())


def test_recommend_never_returns_a_seen_item(trained_run, tmp_path):
    out = tmp_path / "recs.csv"
    proc = run("experiments.recommend", f"run_dir={trained_run}", "k=5", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = pd.read_csv(out)
    _, split, _ = load_run(trained_run)
    assert len(recs) == 5 * split.data.num_users
    seen = {(split.data.user_ids[u], split.data.item_ids[i]) for u, seq in enumerate(split.data.sequences) for i in seq}
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    assert (recs.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_recommend_function_for_some_users(trained_run):
    recs = recommend(trained_run, k=3, users=[2, 5])
    assert recs["user"].tolist() == [2, 2, 2, 5, 5, 5] and recs["rank"].tolist() == [1, 2, 3] * 2


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "ml.txt"
    bad.write_text("1 2\n1 3\n2 x7\n")
    proc = run("experiments.train", "data=sasrec_txt", f"data.path={bad}", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: ml.txt line 3: item id 'x7' is not an integer"
    assert "Traceback" not in proc.stderr
    proc = run("experiments.train", "data=csv", f"data.path={tmp_path / 'nope.csv'}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "nope.csv: no such file" in proc.stderr


def test_unknown_user_is_reported(trained_run, tmp_path):
    proc = run("experiments.recommend", f"run_dir={trained_run}", "users=[123456]", f"out={tmp_path / 'r.csv'}")
    assert proc.returncode == 2 and "unknown user id(s) [123456]" in proc.stderr


def test_recommend_in_item_chunks_matches_all_items(trained_run):
    """Chunked top-K (7 items at a time: a ragged last chunk) returns the items of the unchunked top-K."""
    whole = recommend(trained_run, k=5, batch_size=16)  # the run's eval.item_chunk is unset: all at once
    chunked = recommend(trained_run, k=5, batch_size=16, item_chunk=7)
    assert chunked[["user", "rank", "item"]].equals(whole[["user", "rank", "item"]])
    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=1e-6)


def test_a_planned_stop_exits_3_and_its_resume_0(tmp_path):
    """train.stop_after_steps is not a finished run: exit 3 says so (a script resumes until 0)."""
    args = [*tiny_overrides(), "train.ckpt_every_steps=1", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run("experiments.train", *args, "train.stop_after_steps=1")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "stopped after 1 steps (train.stop_after_steps)" in proc.stdout and "train.resume=true" in proc.stdout
    assert not (tmp_path / "run" / "results.json").exists()
    proc = run("experiments.train", *args, "train.resume=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").exists()
