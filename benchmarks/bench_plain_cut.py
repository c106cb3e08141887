"""Training-step seconds per epoch of the plain shuffle (`train.bucketing=false`) with every batch at max_len
against the same batches cut to the smallest bucket that holds their longest row (data/bucketing.py).

    python benchmarks/bench_plain_cut.py experiment=sasrec_ml1m_best data=synthetic \
        data.synthetic.num_users=6000 data.synthetic.num_items=4000 data.synthetic.mean_length=9 \
        data.synthetic.min_length=5 data.synthetic.max_length=100 data.synthetic.length_sigma=0.7 \
        data.synthetic.num_topics=50                     # short histories (a mean of 9 items)
    python benchmarks/bench_plain_cut.py experiment=sasrec_ml1m_best   # ML-1M: no batch is cut

Arguments are Hydra overrides. Takes epoch 1's batches of the run (rows, order, packed target positions as
`run_epoch` builds them), compiles every shape first, then times a pass over them at max_len and cut, in
turns (median of `--repeats` passes each, each ended by `block_until_ready`). Only the batch length differs:
the same rows, the same step. Appends a dated table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import ROOT, environment, with_step_fields
from recattn_jax.config import register_configs, to_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.bucketing import training_batches
from recattn_jax.data.load import load_split
from recattn_jax.train.step import build_training


def epoch_feeds(config, arrays, max_len: int) -> dict[str, list[dict]]:
    """Epoch 1's batches of the plain shuffle, at max_len ("padded") and cut ("cut"), as run_epoch feeds them."""
    rng = np.random.default_rng([config.seed, 1])
    feeds: dict[str, list[dict]] = {"padded": [], "cut": []}
    for idx, cut in training_batches(arrays, config.train.batch_size, max_len, rng, bucketing=False):
        for mode, length in (("padded", max_len), ("cut", cut)):
            feeds[mode].append(jax.device_put(with_step_fields(config, arrays.batch(idx, length))))
    return feeds


def shape_of(batch: dict) -> tuple:
    return tuple((k, v.shape) for k, v in sorted(batch.items()))


def shapes(feed: list[dict]) -> set:
    return {shape_of(batch) for batch in feed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        config = to_config(compose("config", overrides=args.overrides))
    config.train.bucketing = False
    split = load_split(config.data)
    max_len = config.model.max_len
    arrays = next_item_arrays(split.train_sequences, max_len, whole_history=config.train.whole_history)
    _, state, train_step, _ = build_training(config, split.data.num_items, layout=None)
    feeds = epoch_feeds(config, arrays, max_len)
    key = jax.random.key(config.seed)
    compile_seconds = {}
    for mode, feed in feeds.items():  # one step per shape: every compile happens here
        started = time.perf_counter()
        for batch in {shape_of(b): b for b in feed}.values():
            state, metrics = train_step(state, batch, key)
        jax.block_until_ready(metrics)
        compile_seconds[mode] = time.perf_counter() - started
    seconds: dict[str, list[float]] = {mode: [] for mode in feeds}
    for _ in range(args.repeats):
        for mode, feed in feeds.items():
            started = time.perf_counter()
            for batch in feed:
                state, metrics = train_step(state, batch, key)
            jax.block_until_ready((state, metrics))
            seconds[mode].append(time.perf_counter() - started)
            print(f"{mode}: {seconds[mode][-1]:.2f} s", flush=True)
    positions = {m: sum(b["inputs"].size for b in f) for m, f in feeds.items()}
    targets = int(arrays.lengths.sum())
    rows = [
        (m, len(shapes(f)), compile_seconds[m], 1 - targets / positions[m], statistics.median(seconds[m]))
        for m, f in feeds.items()
    ]
    ratio = rows[0][4] / rows[1][4]
    print(rows, f"cut is {ratio:.2f}x as fast", flush=True)
    if args.no_write:
        return
    env = environment()
    lines = [
        "",
        f"## The plain shuffle cut to each batch's longest row ({env['date']})",
        "",
        f"`python benchmarks/bench_plain_cut.py {' '.join(args.overrides)}`: epoch 1's {len(feeds['cut'])} batches "
        f"({arrays.num_rows:,} rows, {targets:,} targets, max_len {max_len}), median of {args.repeats} passes each.",
        f"Commit {env['commit']}; {env['machine']}; {env['device']}; jax {env['jax']}, flax {env['flax']}.",
        "",
        "| batches | shapes (compiles) | compile + first step s | padded positions | s per pass |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {m} | {n} | {c:.1f} | {p:.1%} | {s:.2f} |" for m, n, c, p, s in rows]
    lines += ["", f"Cut batches: {ratio:.2f}x the speed of batches at max_len."]
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
