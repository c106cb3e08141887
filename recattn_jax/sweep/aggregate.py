"""One table for a sweep: `summary.csv` (a row per run), `summary.md` (mean ± std over seeds per setting,
best first) and a plot of the main metric against each swept key, all written into the sweep directory.

A run is a directory holding `results.json` (written by `train_and_evaluate`) and, when Hydra made it,
`.hydra/overrides.yaml` (the command-line overrides of that job: the swept keys come from there).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recattn_jax.config import SELECTION_METRIC

MAIN_METRIC = f"valid_full_{SELECTION_METRIC}"  # what the runs were selected and stopped on
TABLE_METRICS = [MAIN_METRIC, "test_full_NDCG@10", "test_full_HR@10", "test_sampled_NDCG@10", "test_sampled_HR@10"]
SEED_KEYS = ("seed",)
FAILED_FILE = "failed.txt"  # a sweep job that ended with an error writes its one-line reason here
FAILED = "failed: "  # the status of such a job begins with this


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Every directory under `sweep_dir` with a results.json or a Hydra job record, in a stable order."""
    found = {p.parent for p in sweep_dir.rglob("results.json")}
    found |= {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    return sorted(found, key=lambda p: [int(s) if s.isdigit() else s for s in p.relative_to(sweep_dir).parts])


def read_overrides(run_dir: Path) -> dict[str, str]:
    """`key=value` overrides of the job, as strings (`+key` and `++key` count as `key`)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    out = {}
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        print(f"warning: {path}: unreadable ({type(e).__name__}); its overrides are left out", file=sys.stderr)
        return {}
    for item in items if isinstance(items, list) else []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def run_row(sweep_dir: Path, run_dir: Path) -> dict:
    row: dict[str, Any] = {"run": str(run_dir.relative_to(sweep_dir)) or ".", **read_overrides(run_dir)}
    results_file = run_dir / "results.json"
    if not results_file.exists():
        try:
            return {**row, "status": FAILED + (run_dir / FAILED_FILE).read_text().strip()}
        except (OSError, UnicodeDecodeError):
            return {**row, "status": "no results.json (failed, stopped or running)"}
    try:
        results = json.loads(results_file.read_text())
        if not isinstance(results, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:  # a run killed while writing it, a damaged disk
        print(f"warning: {results_file}: unreadable ({e}); left out of the summary", file=sys.stderr, flush=True)
        return {**row, "status": f"unreadable results.json ({type(e).__name__})"}
    for split in ("valid", "test"):
        for protocol, metrics in results.get(split, {}).items():
            row |= {f"{split}_{protocol}_{name}": value for name, value in metrics.items()}
    for key in ("train_seconds", "epochs", "steps", "best_step", "git_commit"):
        row[key] = results.get(key)
    return {**row, "status": "ok"}


def swept_keys(table: pd.DataFrame, override_keys: list[str]) -> list[str]:
    """The override keys that take more than one value across the runs."""
    return [k for k in override_keys if table[k].astype(str).nunique() > 1]


def summarize(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of each setting of `keys` (seed excluded), best main metric first."""
    ok = table[table["status"] == "ok"]
    metrics = [m for m in [*TABLE_METRICS, "train_seconds"] if m in ok]
    if ok.empty or not metrics:
        return pd.DataFrame()
    groups = ok.groupby(keys, dropna=False, sort=False) if keys else [((), ok)]
    rows = []
    for setting, runs in groups:
        setting = setting if isinstance(setting, tuple) else (setting,)
        row = dict(zip(keys, setting, strict=True)) | {"runs": len(runs)}
        for m in metrics:
            values = runs[m].astype(float)
            row[f"{m} mean"] = values.mean()
            row[f"{m} std"] = values.std(ddof=0)
        rows.append(row)
    summary = pd.DataFrame(rows)
    sort_by = f"{MAIN_METRIC} mean" if f"{MAIN_METRIC} mean" in summary else f"{metrics[0]} mean"
    return summary.sort_values(sort_by, ascending=False, kind="stable").reset_index(drop=True)


def summary_markdown(
    summary: pd.DataFrame, keys: list[str], sweep_dir: Path, num_runs: int, left_out: pd.DataFrame | None = None
) -> str:
    """The table of `summary`, then each run of `left_out` (runs not summarised) with its overrides and status."""
    lines = [f"# Sweep {sweep_dir}", "", f"{num_runs} runs; mean ± std over seeds; best valid NDCG@10 first.", ""]
    tail = _left_out_lines(left_out, keys) if left_out is not None and len(left_out) else []
    if summary.empty:
        return "\n".join([*lines, "No finished run (no results.json).", *tail]) + "\n"
    metrics = [c[: -len(" mean")] for c in summary.columns if c.endswith(" mean")]
    lines.append("| " + " | ".join([*keys, "runs", *metrics]) + " |")
    lines.append("|" + "---|" * (len(keys) + 1 + len(metrics)))
    for _, row in summary.iterrows():
        cells = [str(row[k]) for k in keys] + [str(int(row["runs"]))]
        for m in metrics:
            digits = 1 if m == "train_seconds" else 4
            cells.append(f"{row[f'{m} mean']:.{digits}f} ± {row[f'{m} std']:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, *tail]) + "\n"


def _left_out_lines(left_out: pd.DataFrame, keys: list[str]) -> list[str]:
    lines = ["", f"Not summarised ({len(left_out)} of the runs):", ""]
    for _, row in left_out.iterrows():
        setting = ", ".join(f"{k}={row[k]}" for k in [*keys, *SEED_KEYS] if k in row and str(row[k]) != "")
        lines.append(f"- `{row['run']}`{f' ({setting})' if setting else ''}: {row['status']}")
    return lines


def _as_numbers(values: pd.Series) -> pd.Series | None:
    numbers = pd.to_numeric(values, errors="coerce")
    return None if numbers.isna().any() else numbers


def plot_against(table: pd.DataFrame, key: str, out: Path, metric: str = MAIN_METRIC) -> Path:
    """The metric of every run against `key` (dots) and its mean per value (line, ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[(table["status"] == "ok") & table[metric].notna()]
    numbers = _as_numbers(ok[key])
    labels = sorted(ok[key].astype(str).unique(), key=lambda v: (numbers is None, _sort_key(v)))
    position = {v: (float(v) if numbers is not None else i) for i, v in enumerate(labels)}
    x = ok[key].astype(str).map(position)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(x, ok[metric], s=14, alpha=0.5, label="runs")
    grouped = ok.assign(_x=x).groupby("_x")[metric]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0)
    ax.errorbar(mean.index, mean.values, yerr=std.values, marker="o", capsize=3, label="mean ± std")
    if numbers is None:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _sort_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, math.nan, value)


def aggregate_sweep(sweep_dir: str | Path) -> dict[str, Path]:
    """Write summary.csv, summary.md and one plot per swept key into `sweep_dir`; returns their paths."""
    sweep_dir = Path(sweep_dir)
    dirs = run_dirs(sweep_dir)
    if not dirs:
        raise FileNotFoundError(f"{sweep_dir}: no run directory (results.json or .hydra/overrides.yaml) under it")
    rows = [run_row(sweep_dir, d) for d in dirs]
    override_keys = list(dict.fromkeys(k for d in dirs for k in read_overrides(d)))
    table = pd.DataFrame(rows)
    for key in override_keys:
        table[key] = table[key].fillna("")
    keys = swept_keys(table, override_keys)
    setting_keys = [k for k in keys if k not in SEED_KEYS]
    out = {"csv": sweep_dir / "summary.csv", "md": sweep_dir / "summary.md"}
    table.to_csv(out["csv"], index=False)
    summary = summarize(table, setting_keys)
    left_out = table[table["status"] != "ok"]
    out["md"].write_text(summary_markdown(summary, setting_keys, sweep_dir, len(rows), left_out))
    if MAIN_METRIC in table and (table["status"] == "ok").any():
        for key in setting_keys:
            out[f"plot:{key}"] = plot_against(table, key, sweep_dir / f"{MAIN_METRIC}_vs_{key}.png")
    return out


def read_summary(sweep_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(sweep_dir) / "summary.csv")


__all__ = ["FAILED", "FAILED_FILE", "MAIN_METRIC", "aggregate_sweep", "read_summary", "run_dirs", "summarize"]
