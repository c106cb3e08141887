"""Collect a sweep's runs into one table: `python -m experiments.aggregate SWEEP_DIR`.

Writes SWEEP_DIR/summary.csv (one row per run), summary.md (mean ± std over seeds per setting,
best first) and a plot of valid NDCG@10 against each swept key. Every multirun also does this at its
end (the `aggregate` Hydra callback in conf/config.yaml). A run whose results.json cannot be read is named
in a warning and listed with its status; the other runs are summarised.
"""

import sys

from recattn_jax.sweep.aggregate import aggregate_sweep


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        written = aggregate_sweep(argv[0])
    except OSError as e:  # no run under it, or a summary that cannot be written
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((written["md"]).read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
