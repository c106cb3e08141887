"""Writing figures and tables: matplotlib on Agg, tables as CSV and markdown, dates of cached results."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = PROJECT_ROOT / "docs" / "results"  # cached results of runs that need a GPU or hours


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, footnote: str | None = None) -> Path:
    if footnote:
        fig.text(0.01, -0.02, footnote, fontsize=6.5, color="0.35", ha="left", va="top", wrap=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def write_table(table: pd.DataFrame, stem: Path, title: str, notes: Sequence[str] = ()) -> list[Path]:
    """`stem`.csv and `stem`.md (a markdown table headed by `title`, followed by `notes`)."""
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv, index=False)
    lines = [f"# {title}", "", markdown_table(table), "", *[f"- {n}" for n in notes]]
    md.write_text("\n".join(lines).rstrip() + "\n")
    return [csv, md]


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def made_on(path: Path) -> str:
    """When a cached result was made: its last commit's date if tracked, else its modification time."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC).strftime("%Y-%m-%d")


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
