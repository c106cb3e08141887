"""Figure 5: valid NDCG@10 against max_len and against the number of blocks, and training curves.

Reads the cached sweep table docs/results/sweep_sasrec_ml1m.csv (summary.csv of
`python -m experiments.train -m experiment=sweep_sasrec_ml1m`) and the training curve
docs/results/sasrec_ml1m_ce.metrics.jsonl (metrics.jsonl of `experiment=sasrec_ml1m_ce`); with
quick=true sweeps each key over two values on tiny synthetic data and draws those runs' curves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from recattn_jax.config import SELECTION_METRIC
from recattn_jax.figures.output import RESULTS_DIR, made_on, pyplot, save_figure, write_table
from recattn_jax.figures.runs import QUICK
from recattn_jax.sweep.aggregate import MAIN_METRIC

CACHED_SWEEP = RESULTS_DIR / "sweep_sasrec_ml1m.csv"
CACHED_CURVE = RESULTS_DIR / "sasrec_ml1m_ce.metrics.jsonl"
KEYS = {"model.max_len": (5, 10), "model.blocks": (1, 2)}  # quick values; the base run has max_len 10, 1 block
SLICE = {"model.max_len": 200, "model.blocks": 2}  # cached grid: each curve holds the other key at this value


def quick_data(runs) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    base = [*QUICK, "model=sasrec"]
    rows: list[dict] = []
    curves: dict[str, list[dict]] = {}
    seen_dirs: list[Path] = []
    for key, values in KEYS.items():
        for value in values:
            # the swept runs skip the sampled protocol (this figure shows full ranking only): fewer compiles
            swept = [*base, f"{key}={value}", "eval.sampled=false"]
            results, workdir = runs.train(base if f"{key}={value}" in base else swept)
            rows.append(
                {"key": key, "value": value, MAIN_METRIC: results["valid"]["full"][SELECTION_METRIC], "runs": 1}
            )
            records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
            if all(workdir != seen for seen in seen_dirs):  # the base run appears once
                curves[f"{key}={value}"] = records
                seen_dirs.append(workdir)
    return pd.DataFrame(rows), curves


def cached_data() -> tuple[pd.DataFrame, dict[str, list[dict]], list[str]]:
    rows, curves, notes = [], {}, []
    if CACHED_SWEEP.exists():
        summary = pd.read_csv(CACHED_SWEEP)
        summary = summary[summary.get("status", "ok") == "ok"]
        for key in KEYS:
            if key in summary:
                others = [k for k in KEYS if k != key and k in summary]
                part = summary
                for other in others:  # a 1-D slice of the grid: the other key at its reference value
                    value = SLICE[other] if (part[other] == SLICE[other]).any() else part[other].mode().iloc[0]
                    part = part[part[other] == value]
                for value, group in part.groupby(key):
                    rows.append(
                        {"key": key, "value": value, MAIN_METRIC: group[MAIN_METRIC].mean(), "runs": len(group)}
                    )
        notes.append(f"Sweep: {CACHED_SWEEP.name}, made {made_on(CACHED_SWEEP)} (mean over seeds).")
    else:
        notes.append(
            "No cached sweep yet: python -m experiments.train -m experiment=sweep_sasrec_ml1m, "
            "then copy its summary.csv to docs/results/sweep_sasrec_ml1m.csv."
        )
    if CACHED_CURVE.exists():
        curves["sasrec_ml1m_ce"] = [json.loads(line) for line in CACHED_CURVE.read_text().splitlines() if line.strip()]
        notes.append(f"Curve: {CACHED_CURVE.name}, made {made_on(CACHED_CURVE)}.")
    else:
        notes.append(
            "No cached curve yet: copy metrics.jsonl of experiment=sasrec_ml1m_ce to "
            "docs/results/sasrec_ml1m_ce.metrics.jsonl."
        )
    return pd.DataFrame(rows, columns=["key", "value", MAIN_METRIC, "runs"]), curves, notes


def make(out_dir: Path, quick: bool, runs) -> list[Path]:
    if quick:
        table, curves = quick_data(runs)
        notes = ["quick=true: tiny synthetic data, a few steps (a smoke test of the pipeline, not a result)."]
    else:
        table, curves, notes = cached_data()
    paths = write_table(table, out_dir / "sweeps", "Valid NDCG@10 against max_len and the number of blocks", notes)
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key in zip(axes[:2], KEYS, strict=True):
        part = table[table["key"] == key].sort_values("value")
        if len(part):
            ax.plot(part["value"], part[MAIN_METRIC], marker="o")
        else:
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(key)
        ax.set_ylabel("valid NDCG@10 (full ranking)")
        ax.grid(alpha=0.3)
    ax, twin = axes[2], axes[2].twinx()
    for name, records in curves.items():
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=f"{name} loss", alpha=0.8)
        twin.plot([r["step"] for r in evals], [r[MAIN_METRIC] for r in evals], "--o", ms=3, label=f"{name} NDCG@10")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (solid)")
    twin.set_ylabel("valid NDCG@10 (dashed)")
    ax.set_title("training curves (metrics.jsonl)")
    if curves:
        ax.legend(fontsize=6, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no curve yet", ha="center", va="center", transform=ax.transAxes)
    paths.append(save_figure(fig, out_dir / "sweeps.png", footnote=" ".join(notes)))
    return paths
