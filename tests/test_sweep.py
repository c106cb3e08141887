"""Sweeps: every job of a multirun writes results.json, and the sweep ends with its summary table."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from tiny_configs import tiny_overrides

from recattn_jax.data.load import PROJECT_ROOT
from recattn_jax.sweep.aggregate import aggregate_sweep


def fake_run(directory, overrides, ndcg, seconds=1.0):
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    metrics = {"full": {"NDCG@10": ndcg, "HR@10": 2 * ndcg}, "sampled": {"NDCG@10": 3 * ndcg, "HR@10": 0.9}}
    results = {"valid": metrics, "test": metrics, "train_seconds": seconds, "epochs": 1, "steps": 2}
    (directory / "results.json").write_text(json.dumps(results))


def test_aggregate_groups_seeds_and_sorts_best_first(tmp_path):
    job = 0
    for blocks, base in ((1, 0.1), (2, 0.3)):
        for lr in ("1e-3", "5e-4"):
            for seed in (0, 1):
                fake_run(
                    tmp_path / str(job),
                    ["train.max_steps=2", f"model.blocks={blocks}", f"train.lr={lr}", f"seed={seed}"],
                    base + 0.01 * seed + (lr == "1e-3") * 0.05,
                )
                job += 1
    (tmp_path / str(job) / ".hydra").mkdir(parents=True)  # a job that died before writing results
    (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(
        "- model.blocks=3\n- train.lr=1e-3\n- seed=0\n- train.max_steps=2\n"
    )
    written = aggregate_sweep(tmp_path)
    table = pd.read_csv(written["csv"])
    assert len(table) == 9 and (table["status"] == "ok").sum() == 8
    assert {"model.blocks", "train.lr", "seed", "valid_full_NDCG@10", "test_sampled_HR@10", "train_seconds"} <= set(
        table
    )
    md = written["md"].read_text().splitlines()
    header = next(line for line in md if line.startswith("| model.blocks"))
    assert "train.max_steps" not in header and "seed" not in header  # not swept / averaged over
    rows = [line for line in md if line.startswith("| 2 ") or line.startswith("| 1 ")]
    assert rows[0].startswith("| 2 | 1e-3 | 2 | 0.3550 ± 0.0050")  # best first, mean ± std over 2 seeds
    assert written["plot:model.blocks"].exists() and written["plot:train.lr"].exists()


def tiny_sweep(sweep, *swept):
    """`python -m experiments.train -m` of one-step tiny jobs over `swept` into `sweep`."""
    command = [sys.executable, "-m", "experiments.train", "-m", *tiny_overrides(), "train.max_steps=1", *swept]
    return subprocess.run(
        [*command, f"hydra.sweep.dir={sweep}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=400
    )


def test_multirun_writes_results_and_ends_with_summary(tmp_path):
    sweep = tmp_path / "sweep"
    proc = tiny_sweep(sweep, "model.blocks=1,2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "0" / "results.json").exists() and (sweep / "1" / "results.json").exists()
    table = pd.read_csv(sweep / "summary.csv")
    assert sorted(table["model.blocks"]) == [1, 2] and (table["status"] == "ok").all()
    assert (sweep / "summary.md").exists() and (sweep / "valid_full_NDCG@10_vs_model.blocks.png").exists()
    assert "sweep summary" in proc.stdout


def test_a_failing_job_leaves_the_others_and_is_listed(tmp_path):
    """One job with an impossible value: the sweep's other job still runs and is summarised, the failed one is
    listed with its one-line reason in summary.md, and the sweep exits 2 (it used to stop at the first failure,
    with no summary)."""
    sweep = tmp_path / "sweep"
    proc = tiny_sweep(sweep, "model.dropout=1.5,0.1")
    reason = "model.dropout=1.5 must lie in [0.0, 1.0)"
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (sweep / "0" / "failed.txt").read_text() == reason + "\n"
    assert (sweep / "1" / "results.json").exists() and not (sweep / "0" / "results.json").exists()
    table = pd.read_csv(sweep / "summary.csv").set_index("model.dropout")
    assert table.loc[1.5, "status"] == "failed: " + reason and table.loc[0.1, "status"] == "ok"
    md = (sweep / "summary.md").read_text()
    assert "| 0.1 | 1 | " in md and f"- `0` (model.dropout=1.5): failed: {reason}" in md
    assert proc.stderr.strip().splitlines()[-1] == f"error: 1 of 2 jobs failed (listed in {sweep / 'summary.md'})"


@pytest.mark.slow
def test_optuna_search_maximises_valid_ndcg(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `sweep` extra is not installed")
    sweep = tmp_path / "optuna"
    args = [*tiny_overrides(), "train.max_steps=1", "model.blocks=1", "model.max_len=10", "model.hidden=choice(8,16)"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.train",
            "-m",
            "hparams_search=ml1m_optuna",
            "data=synthetic",
            *args,
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    table = pd.read_csv(sweep / "summary.csv")
    assert best["best_value"] == pytest.approx(table["valid_full_NDCG@10"].max())
