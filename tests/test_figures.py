"""`experiments.figures quick=true` makes every figure and table; the worked example is computed right."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recattn_jax.data.load import PROJECT_ROOT
from recattn_jax.figures import FIGURES
from recattn_jax.figures import sasrec_published as fig
from recattn_jax.figures.output import RESULTS_DIR
from recattn_jax.figures.worked_example import ARTICLE_OUTPUT, reading_per_position, reading_windows


def test_worked_example_both_readings_match_numpy():
    a, b = reading_windows(), reading_per_position()
    np.testing.assert_allclose(a["weights"], a["weights_np"], atol=1e-6)
    np.testing.assert_allclose(a["out"], a["out_np"], rtol=1e-6)
    assert np.allclose(a["weights"].sum(axis=1), 1) and a["weights"][0, 2] > 0.99
    scores = np.arange(1, 6) ** 2 + 1.0  # w_i x_i + b with w_i = x_i = i
    expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(b["weights"], expected, rtol=1e-5)
    assert abs(b["out"] - expected @ np.arange(1, 6)) < 1e-5
    assert b["out"] <= 5 < ARTICLE_OUTPUT  # a convex combination of items <= 5 never reaches the article's 18.0


def quick_figures(out_dir, *args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.figures", f"out_dir={out_dir}", "quick=true", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow  # a minute of training runs: run with -m slow before landing changes to figures
def test_quick_figures_all_exist(tmp_path):
    """Every figure and table; the comparison trains only SASRec here (all models: the slow test below)."""
    proc = quick_figures(tmp_path, "models=sasrec")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FIGURES:
        for suffix in (".png", ".csv", ".md"):
            path = tmp_path / f"{name}{suffix}"
            assert path.exists() and path.stat().st_size > 0, path
    assert "18" in (tmp_path / "worked_example.md").read_text()


@pytest.mark.slow
def test_quick_model_comparison_trains_every_registered_model(tmp_path):
    from recattn_jax.models import MODELS

    proc = quick_figures(tmp_path, "only=model_comparison")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "model_comparison.csv")
    assert sorted(table["model"]) == sorted(MODELS) and (table["status"] == "ok").all()


def test_unknown_figure_is_reported(tmp_path):
    proc = quick_figures(tmp_path, "only=nope")  # refused before anything is made
    assert proc.returncode == 2 and "unknown figure" in proc.stderr


def test_out_dir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    out_dir = tmp_path / "file" / "figures"  # under a file: NotADirectoryError, once a traceback
    proc = quick_figures(out_dir, "only=sasrec_published")
    assert (proc.returncode, proc.stderr) == (
        2,
        f"error: out_dir={out_dir}: cannot make the folder (Not a directory)\n",
    )


def test_cached_comparison_keeps_feature_variants_apart(tmp_path):
    from recattn_jax.figures.model_comparison import cached_table

    summary = pd.DataFrame(
        {
            "model": ["sasrec", "sasrec", "pop", "sasrec"],
            "model.item_features": ["none", "tfidf", "none", "none"],
            "seed": [0, 0, 0, 1],
            "test_full_NDCG@10": [0.1, 0.3, 0.02, 0.2],
            "status": ["ok", "ok", "ok", "ok"],
        }
    )
    summary.to_csv(tmp_path / "summary.csv", index=False)
    table = cached_table(tmp_path / "summary.csv").set_index("model")
    assert table.loc["sasrec", "runs"] == 2 and table.loc["sasrec", "test_full_NDCG@10"] == pytest.approx(0.15)
    assert table.loc["sasrec +tfidf", "test_full_NDCG@10"] == pytest.approx(0.3) and "pop" in table.index


def test_published_table_has_every_anchor_ours_and_the_target(tmp_path):
    """Figure 3 from the cached results (no training): every published row of issue 11, ours as the mean and
    sample std of the cached seeds, and the target."""
    frame = fig.table(quick=False, runs=None)
    published = frame[frame.kind == "published"]
    assert len(published[published.protocol == "full"]) == len(fig.FULL_PUBLISHED) == 5
    assert set(published["NDCG@10"]) >= {0.1821, 0.1857, 0.1858, 0.1930, 0.1893}
    seeds = sorted(RESULTS_DIR.glob("sasrec_ml1m_best.seed*.json"))
    if not seeds:
        pytest.skip("no cached seeds of experiment=sasrec_ml1m_best in docs/results")
    ndcg = [json.loads(p.read_text())["test"]["full"]["NDCG@10"] for p in seeds]
    best = frame[frame.system == "experiment=sasrec_ml1m_best"].iloc[0]
    assert best["seeds"] == len(seeds) and best["NDCG@10"] == pytest.approx(np.mean(ndcg))
    assert best["NDCG@10 std"] == pytest.approx(np.std(ndcg, ddof=1))
    code = sorted(RESULTS_DIR.glob("ablation_ce_sasrec_code.seed*.json"))  # the SASRec+ config with its code's details
    code_row = frame[frame.system.str.contains("model.init=normal")].iloc[0]
    code_ndcg = [json.loads(p.read_text())["test"]["full"]["NDCG@10"] for p in code]
    assert code_row["seeds"] == len(code) == 3 and code_row["NDCG@10"] == pytest.approx(np.mean(code_ndcg))
    target = frame[frame.kind == "target"].iloc[0]
    assert (target["NDCG@10"], target["HR@10"]) == (0.200, 0.340)
    paths = fig.make(tmp_path, quick=False, runs=None)
    assert {p.suffix for p in paths} == {".csv", ".md", ".png"}
    assert "LRURec" in (tmp_path / "sasrec_published.md").read_text()


def test_a_run_cached_as_name_json_and_more_seeds_counts_once_per_seed(tmp_path, monkeypatch):
    """experiment=sasrec_ml1m_ce is cached as NAME.json (seed 0, the issue's file) and further seeds as
    NAME.seedN.json: the figure averages every seed once, a seed cached twice counting once."""

    def cached(name, seed, ndcg):
        results = {"config": {"seed": seed}, "test": {"full": {"NDCG@10": ndcg, "HR@10": 2 * ndcg}}}
        (tmp_path / name).write_text(json.dumps(results))

    cached("sasrec_ml1m_ce.json", 0, 0.17)
    cached("sasrec_ml1m_ce.seed0.json", 0, 0.99)  # the same seed again: not counted twice
    cached("sasrec_ml1m_ce.seed1.json", 1, 0.19)
    monkeypatch.setattr(fig, "RESULTS_DIR", tmp_path)
    tests, where = fig.ours(quick=False, runs=None)["sasrec_ml1m_ce"]
    assert [t["full"]["NDCG@10"] for t in tests] == [0.17, 0.19]
    assert where == "2 seed(s): sasrec_ml1m_ce.json, sasrec_ml1m_ce.seed1.json"


def test_their_code_row_averages_each_cached_seed_of_sasrec_plus_code(tmp_path, monkeypatch):
    """SASRec+'s own code run here is a row of its own kind, from its harness's result.json per seed; without a
    cached seed the row is there, empty, and says how to make one."""
    monkeypatch.setattr(fig, "RESULTS_DIR", tmp_path)
    row = lambda frame: frame[frame.kind == "their code"].iloc[0]  # noqa: E731
    empty = row(fig.table(quick=False, runs=None))
    assert np.isnan(empty["NDCG@10"]) and empty["seeds"] == 0
    assert "sasrec_plus_epochs.py" in empty["source"]
    for seed, ndcg in ((0, 0.18), (1, 0.19)):
        result = {"test": {"NDCG@10": ndcg, "HR@10": 2 * ndcg}, "best_epoch": 60, "epochs": 70, "valid_ndcg": 0.2}
        (tmp_path / f"sasrec_plus_code.seed{seed}.json").write_text(json.dumps(result))
    filled = row(fig.table(quick=False, runs=None))
    assert filled["seeds"] == 2 and filled["NDCG@10"] == pytest.approx(0.185) and filled["HR@10"] == pytest.approx(0.37)
    assert filled["NDCG@10 std"] == pytest.approx(np.std([0.18, 0.19], ddof=1))
    assert filled["source"] == "2 seed(s): sasrec_plus_code.seed0.json, sasrec_plus_code.seed1.json"
    (tmp_path / "out").mkdir()
    paths = fig.make(tmp_path / "out", quick=False, runs=None)
    assert "SASRec+'s own code, run here" in (tmp_path / "out" / "sasrec_published.md").read_text()
    assert len(paths) == 3
