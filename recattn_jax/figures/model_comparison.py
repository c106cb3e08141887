"""Figure 2: the recommenders compared on ML-1M, full ranking and sampled.

Reads the cached sweep table docs/results/compare_ml1m.csv (the summary.csv that
`python -m experiments.train -m experiment=compare_ml1m` ends with) or, while that GPU-sized sweep has
not been run, docs/results/compare_ml1m_cpu.csv (`experiment=compare_ml1m_cpu`, a 10-epoch budget), and
says when it was made; models with TF-IDF fusion are rows of their own ("sasrec +tfidf"). With
quick=true trains every model of the registry (`recattn_jax.models.MODELS`) on tiny synthetic data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recattn_jax.figures.output import RESULTS_DIR, made_on, pyplot, save_figure, write_table
from recattn_jax.figures.runs import QUICK, model_overrides

CACHED = [RESULTS_DIR / "compare_ml1m.csv", RESULTS_DIR / "compare_ml1m_cpu.csv"]  # the first that exists
COLUMNS = ["test_full_HR@10", "test_full_NDCG@10", "test_sampled_HR@10", "test_sampled_NDCG@10", "train_seconds"]


def quick_table(runs) -> pd.DataFrame:
    from recattn_jax.models import MODELS

    unknown = sorted(set(runs.models or ()) - set(MODELS))
    if unknown:
        raise KeyError(f"models={unknown} are not registered; choose from {sorted(MODELS)}")
    rows = []
    for name in runs.models or sorted(MODELS):
        overrides = [*QUICK, *model_overrides(name)]
        try:
            results, _ = runs.train(overrides)
        except Exception as e:  # one broken model must not hide the others' results
            print(f"model_comparison: {name} failed: {type(e).__name__}: {e}")
            rows.append({"model": name, "status": f"failed: {type(e).__name__}"})
            continue
        row = {"model": name, "runs": 1, "status": "ok"}
        for split_protocol in ("full", "sampled"):
            for metric in ("HR@10", "NDCG@10"):
                row[f"test_{split_protocol}_{metric}"] = results["test"].get(split_protocol, {}).get(metric, np.nan)
        row["train_seconds"] = results["train_seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def cached_file() -> Path | None:
    return next((path for path in CACHED if path.exists()), None)


def cached_table(path: Path) -> pd.DataFrame | None:
    summary = pd.read_csv(path)
    model_col = next((c for c in ("model", "model.name") if c in summary), None)
    if model_col is None:
        return None
    summary = summary[summary.get("status", "ok") == "ok"].copy()
    features = summary.get("model.item_features", pd.Series("none", index=summary.index)).fillna("none")
    summary["model"] = summary[model_col] + np.where(features == "none", "", " +" + features.astype(str))
    groups = summary.groupby("model", sort=False)
    table = groups[[c for c in COLUMNS if c in summary]].mean().reset_index()
    table.insert(1, "runs", groups.size().values)
    return table


def make(out_dir: Path, quick: bool, runs) -> list[Path]:
    cached = None if quick else cached_file()
    found = cached_table(cached) if cached else None
    if quick:
        table = quick_table(runs)
        source = "quick=true: tiny synthetic data, a few steps (a smoke test of the pipeline, not a result)"
    elif cached is not None and found is not None:
        table = found
        source = f"{cached.relative_to(RESULTS_DIR.parents[1])}, made {made_on(cached)} (mean over seeds)"
    else:
        source = (
            "no cached results yet: python -m experiments.train -m experiment=compare_ml1m, "
            "then copy summary.csv to docs/results/compare_ml1m.csv"
        )
        table = pd.DataFrame(columns=["model", "runs", *COLUMNS])
    if "test_full_NDCG@10" in table and len(table):
        table = table.sort_values("test_full_NDCG@10", ascending=False, na_position="last")
    paths = write_table(table, out_dir / "model_comparison", "Recommenders on ML-1M: test HR@10 and NDCG@10", [source])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, protocol in zip(axes, ("full", "sampled"), strict=True):
        ok = table.dropna(subset=[f"test_{protocol}_NDCG@10"]) if len(table) else table
        x = np.arange(len(ok))
        if len(ok):
            ax.bar(x - 0.2, ok[f"test_{protocol}_HR@10"], 0.4, label="HR@10")
            ax.bar(x + 0.2, ok[f"test_{protocol}_NDCG@10"], 0.4, label="NDCG@10")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks(x, list(ok["model"]) if len(ok) else [], rotation=30)
        ax.set_title(f"{protocol} ranking (test)")
    paths.append(save_figure(fig, out_dir / "model_comparison.png", footnote=source))
    return paths
