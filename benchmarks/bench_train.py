"""Seconds per epoch and sequences/s of training, for the reference experiment on ML-1M.

    python benchmarks/bench_train.py                 # BCE and full CE, 3 timed epochs each
    python benchmarks/bench_train.py --losses bce --epochs 5 --data synthetic
    python benchmarks/bench_train.py --experiments sasrec_ml1m_ce,sasrec_ml1m_sampled3000   # experiments as they are

Compiles and warms up with one epoch first, then times whole epochs (median of repeats, each ended
by `block_until_ready`). Appends a dated table to benchmarks/RESULTS.md and writes a CSV.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import jax
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import ROOT, environment
from recattn_jax.config import register_configs, to_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.errors import DataError
from recattn_jax.parallel.mesh import ParallelLayout
from recattn_jax.train.epoch import epoch_options, run_epoch
from recattn_jax.train.step import build_training


def reference_config(loss: str | None, data: str, backend: str, experiment: str = "sasrec_ml1m_bce"):
    """`experiment` with the loss group `loss` (None: the experiment's own loss)."""
    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        overrides = [f"experiment={experiment}", f"kernel={backend}"]
        if loss is not None:
            overrides.append(f"loss={loss}")
        if data != "ml1m":
            overrides.append(f"data={data}")
        return to_config(compose("config", overrides=overrides))


def time_epochs(config, split, epochs: int) -> list[float]:
    arrays = next_item_arrays(split.train_sequences, config.model.max_len)
    layout = ParallelLayout.from_config(config, split.data.num_items)
    _, state, train_step, _ = build_training(config, split.data.num_items, layout=layout)
    feed = epoch_options(config.loss, layout)  # as train_and_evaluate does
    # compile + warm up
    state, losses = run_epoch(train_step, state, arrays, config.train, config.seed, 0, 10**9, **feed)
    jax.block_until_ready(losses)
    seconds = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        state, losses = run_epoch(train_step, state, arrays, config.train, config.seed, epoch, 10**9, **feed)
        jax.block_until_ready((state, losses))
        seconds.append(time.perf_counter() - started)
    return seconds, arrays.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default="bce,ce", help="loss groups on experiment=sasrec_ml1m_bce")
    parser.add_argument("--experiments", default="", help="time these experiments with their own losses instead")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loss (after one warm-up epoch)")
    parser.add_argument("--data", default="ml1m", help="ml1m (the reference) or synthetic")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.csv"))
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()

    rows = []
    if args.experiments:  # (label, loss group, experiment)
        variants = [(name, None, name) for name in args.experiments.split(",")]
    else:
        variants = [(loss, loss, "sasrec_ml1m_bce") for loss in args.losses.split(",")]
    for label, loss, experiment in variants:
        config = reference_config(loss, args.data, args.backend, experiment)
        try:
            split = load_split(config.data)
        except DataError as e:
            sys.exit(f"skipped: {e} (ML-1M is not redistributable; it is read from ../shared/data/ml-1m)")
        seconds, sequences = time_epochs(config, split, args.epochs)
        median = statistics.median(seconds)
        rows.append(
            {
                "data": args.data,
                "loss": label,
                "backend": args.backend,
                "max_len": config.model.max_len,
                "hidden": config.model.hidden,
                "batch_size": config.train.batch_size,
                "epochs_timed": len(seconds),
                "s_per_epoch_median": round(median, 3),
                "s_per_epoch_all": " ".join(f"{s:.2f}" for s in seconds),
                "sequences_per_s": round(sequences / median, 1),
            }
        )
        print(rows[-1], flush=True)

    env = environment()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], *env])
        writer.writeheader()
        writer.writerows({**r, **env} for r in rows)
    if not args.no_record:
        lines = [
            f"\n## bench_train.py — {env['date']}, commit {env['commit']}\n",
            f"Machine: {env['machine']}; device {env['device']}; python {env['python']}, jax {env['jax']}, "
            f"flax {env['flax']}, optax {env['optax']}.\n",
            f"Command: `python benchmarks/bench_train.py --data {args.data} --epochs {args.epochs}"
            + (f" --experiments {args.experiments}`\n" if args.experiments else "`\n"),
            "| data | loss (or experiment) | max_len | hidden | batch | s/epoch (median) | epochs timed | sequences/s "
            f"| time vs {rows[0]['loss']} |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['data']} | {r['loss']} | {r['max_len']} | {r['hidden']} | {r['batch_size']} | "
            f"{r['s_per_epoch_median']:.2f} | {r['s_per_epoch_all']} | {r['sequences_per_s']:.0f} | "
            f"{r['s_per_epoch_median'] / rows[0]['s_per_epoch_median']:.2f}x |"
            for r in rows
        ]
        with (ROOT / "benchmarks" / "RESULTS.md").open("a") as f:
            f.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
