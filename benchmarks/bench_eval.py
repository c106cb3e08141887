"""Seconds per validation pass (full ranking + 100-negative sampled) of every ML-1M user, warm.

    python benchmarks/bench_eval.py                       # experiment=sasrec_ml1m_bce, eval.batch_size default
    python benchmarks/bench_eval.py --batch-sizes 16,32,64,512
    python benchmarks/bench_eval.py --bucketing false,true      # users in length groups or not, same sitting
    python benchmarks/bench_eval.py --item-chunks none,512      # whole-catalogue scores, or item chunks of 512
    python benchmarks/bench_eval.py --experiment sasrec_ml1m_ce data=sasrec_txt data.path=FILE  # Hydra overrides

An untrained model (the pass's cost does not depend on the weights); the first pass compiles, the median of
`--repeats` warm passes is reported. Training runs log the same wall time per pass as `eval_seconds`.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import environment, experiment_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.train.step import build_training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="sasrec_ml1m_bce")
    parser.add_argument("--batch-sizes", default="", help="eval.batch_size values (default: the config's)")
    parser.add_argument("--bucketing", default="", help="eval.bucketing values, e.g. false,true (default: config's)")
    parser.add_argument("--item-chunks", default="", help="eval.item_chunk values, none = whole catalogue")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides on top of the experiment, e.g. data.path=FILE")
    args = parser.parse_args(argv)
    loaded = experiment_split(args.experiment, args.overrides)
    if loaded is None:
        return 0
    config, split = loaded
    graphdef, state, _, model_graphdef = build_training(config, split.data.num_items)
    model_state = nnx.state(nnx.merge(graphdef, state)[0])
    eval_set = build_eval_set(split, "valid", config.model.max_len, config.eval)
    sizes = [int(b) for b in args.batch_sizes.split(",") if b] or [config.eval.batch_size]
    bucketing = [b.strip().lower() == "true" for b in args.bucketing.split(",") if b] or [config.eval.bucketing]
    chunks = [None if c.strip() == "none" else int(c) for c in args.item_chunks.split(",") if c] or [
        config.eval.item_chunk
    ]
    env = environment()
    print(f"bench_eval.py: {env['date']}, commit {env['commit']}, {env['machine']}, jax {env['jax']}")
    print(" ".join([f"--experiment {args.experiment}", *args.overrides]))
    print(f"{len(eval_set.users)} users, max_len {config.model.max_len}, {split.data.num_items} items")
    print(
        "| eval.batch_size | eval.bucketing | eval.item_chunk | first pass (compile) s | warm pass s (median) "
        "| full NDCG@10 |"
    )
    print("|---|---|---|---|---|---|")
    for size, bucket, chunk in itertools.product(sizes, bucketing, chunks):
        eval_config = dataclasses.replace(config.eval, batch_size=size, bucketing=bucket, item_chunk=chunk)
        evaluator = Evaluator(model_graphdef, eval_config)
        started = time.perf_counter()
        metrics = evaluator.evaluate(model_state, eval_set)
        first = time.perf_counter() - started
        warm = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            evaluator.evaluate(model_state, eval_set)
            warm.append(time.perf_counter() - started)
        row = [size, str(bucket).lower(), chunk or "none", f"{first:.2f}", f"{statistics.median(warm):.2f}"]
        print("| " + " | ".join(map(str, row)) + f" | {metrics['full']['NDCG@10']:.6f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
