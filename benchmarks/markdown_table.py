"""Benchmark CSVs as one markdown report: the environment once, then one table per CSV.

    python benchmarks/markdown_table.py OUTDIR/bench_attention.csv [more.csv ...] > OUTDIR/results.md

Columns that are the same on every row (GPU, versions, commit, date) go above the table, not in it.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def markdown(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        parts.append(f"## {path.stem}\n")
        if not rows:
            parts.append("(no rows)\n")
            continue
        keys = list(rows[0])
        constant = [k for k in keys if len({r.get(k, "") for r in rows}) == 1 and len(rows) > 1]
        varying = [k for k in keys if k not in constant]
        parts.extend(f"- {k}: {rows[0][k]}" for k in constant)
        parts.append("")
        parts.append("| " + " | ".join(varying) + " |")
        parts.append("|" + "---|" * len(varying))
        parts.extend("| " + " | ".join(r.get(k) or "" for k in varying) + " |" for r in rows)
        parts.append("")
    return "\n".join(parts)


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    sys.stdout.write(markdown(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
