"""Padded positions, seconds per epoch and metrics with and without length bucketing (train.bucketing).

    python benchmarks/bench_bucketing.py --epochs 3            # ML-1M, the reference experiment (max_len 200)
    python benchmarks/bench_bucketing.py --epochs 2 --data synthetic

Trains the reference experiment (`experiment=sasrec_ml1m_bce`) with `train.bucketing=false` then
`true` from the same seed, and reports the padded share of the positions fed to the model, the
median seconds of the epochs after the first (which compiles), and valid/test full-ranking NDCG@10
of the final state (no early stopping or checkpoint selection).
Appends a dated table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train import reference_config
from benchmarks.env_info import ROOT, environment
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.bucketing import padded_fraction
from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.parallel.mesh import ParallelLayout
from recattn_jax.train.epoch import epoch_options, run_epoch
from recattn_jax.train.step import build_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default="ml1m")
    parser.add_argument("--loss", default="bce")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for bucketing in (False, True):
        config = reference_config(args.loss, args.data, "auto")
        config.train.epochs, config.train.bucketing, config.train.progress = args.epochs, bucketing, False
        config.eval.sampled = False
        split = load_split(config.data)
        arrays = next_item_arrays(split.train_sequences, config.model.max_len)
        padded = padded_fraction(arrays, config.train.batch_size, config.model.max_len, bucketing, config.seed)
        layout = ParallelLayout.from_config(config, split.data.num_items)
        graphdef, state, train_step, model_graphdef = build_training(config, split.data.num_items, layout=layout)
        feed = epoch_options(config.loss, layout)  # as train_and_evaluate does
        seconds, losses = [], []
        for epoch in range(1, args.epochs + 1):
            started = time.perf_counter()
            state, losses = run_epoch(train_step, state, arrays, config.train, config.seed, epoch, 10**9, **feed)
            jax.block_until_ready(losses)
            seconds.append(time.perf_counter() - started)
            print(f"bucketing={bucketing} epoch {epoch}: {seconds[-1]:.1f} s", flush=True)
        evaluator = Evaluator(model_graphdef, config.eval)
        model_state = nnx.state(nnx.merge(graphdef, state)[0])
        metrics = {
            name: evaluator.evaluate(model_state, build_eval_set(split, name, config.model.max_len, config.eval))
            for name in ("valid", "test")
        }
        rows.append(
            {
                "bucketing": bucketing,
                "padded": padded,
                "s_per_epoch": statistics.median(seconds[1:] or seconds),
                "first_epoch_s": seconds[0],
                "train_loss": float(np.mean(jax.device_get(losses))),
                "valid": metrics["valid"]["full"]["NDCG@10"],
                "test": metrics["test"]["full"]["NDCG@10"],
                "test_hr": metrics["test"]["full"]["HR@10"],
            }
        )
        print(rows[-1], flush=True)
    if args.no_write:
        return
    env = environment()
    lines = [
        "",
        f"## Length bucketing on {args.data} ({env['date']})",
        "",
        f"`python benchmarks/bench_bucketing.py {' '.join(sys.argv[1:])}` — experiment=sasrec_ml1m_bce "
        f"(max_len 200, batch 128), loss={args.loss}, {args.epochs} epochs each from seed 0.",
        f"Commit {env['commit']}; {env['machine']}; {env['device']}; jax {env['jax']}, flax {env['flax']}.",
        "",
        "| train.bucketing | padded positions | s/epoch (first, with compile) | last-epoch loss "
        "| valid NDCG@10 | test NDCG@10 | test HR@10 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['bucketing']} | {r['padded']:.1%} | {r['s_per_epoch']:.1f} ({r['first_epoch_s']:.1f}) "
        f"| {r['train_loss']:.4f} | "
        f"{r['valid']:.4f} | {r['test']:.4f} | {r['test_hr']:.4f} |"
        for r in rows
    ]
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
