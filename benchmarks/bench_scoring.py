"""Users/s and peak memory of full-ranking top-K scoring over 10k, 100k and 1M items.

    python benchmarks/bench_scoring.py                         # chunk 16384 vs all items at once
    python benchmarks/bench_scoring.py --items 10000 100000 --chunks 0 4096 --users 256

`chunk=0` scores all items at once (a [users, items] score matrix); otherwise
`recattn_jax.parallel.topk.chunked_topk` scans `chunk` items at a time. Each configuration runs in
its own subprocess so its peak RSS is its own; "XLA temp" is the compiled program's temporary
buffer size (memory_analysis), the part that chunking bounds. Compiles and warms up first, then
times `--repeats` batches (median, ended by `block_until_ready`). Appends a dated table to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import ROOT, environment


def measure(items: int, chunk: int, users: int, dim: int, history: int, k: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from recattn_jax.parallel.topk import chunked_topk, full_topk

    keys = jax.random.split(jax.random.key(0), 3)
    table = jax.random.normal(keys[0], (items + 1, dim), jnp.float32)
    user = jax.random.normal(keys[1], (users, dim), jnp.float32)
    seen = jax.random.randint(keys[2], (users, history), 1, items + 1)
    if chunk:
        fn = jax.jit(lambda u, t, s: chunked_topk(u, t, s, k, chunk=chunk, num_items=items))
    else:
        fn = jax.jit(lambda u, t, s: full_topk(u @ t.T, s, k, items))
    compiled = fn.lower(user, table, seen).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    jax.block_until_ready(fn(user, table, seen))  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(user, table, seen))
        times.append(time.perf_counter() - started)
    return {
        "items": items,
        "chunk": chunk or "all",
        "users_per_s": users / statistics.median(times),
        "xla_temp_mb": temp / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "table_mb": (items + 1) * dim * 4 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 16384], help="0: all items at once")
    parser.add_argument("--users", type=int, default=512, help="users scored per batch")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--history", type=int, default=200, help="masked history items per user")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=str, help=argparse.SUPPRESS)  # internal: one configuration as JSON
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return

    rows = []
    for items in args.items:
        for chunk in args.chunks:
            one = dict(
                items=items, chunk=chunk, users=args.users, dim=args.dim, history=args.history, k=args.k,
                repeats=args.repeats,
            )  # fmt: skip
            proc = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(one)], capture_output=True, text=True, cwd=ROOT
            )
            if proc.returncode:
                print(f"items={items} chunk={chunk}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"{r['items']:>9} items  chunk {r['chunk']!s:>6}  {r['users_per_s']:>10.0f} users/s  "
                f"XLA temp {r['xla_temp_mb']:>8.1f} MB  peak RSS {r['peak_rss_mb']:>8.1f} MB",
                flush=True,
            )
    if args.no_write or not rows:
        return
    env = environment()
    command = "python benchmarks/bench_scoring.py " + " ".join(sys.argv[1:])
    lines = [
        "",
        f"## Full-ranking top-{args.k} scoring ({env['date']})",
        "",
        f"`{command.strip()}` — {args.users} users per batch, D={args.dim}, {args.history} masked history items.",
        f"Commit {env['commit']}; {env['machine']}; {env['device']}; python {env['python']}, jax {env['jax']}, "
        f"jaxlib {env['jaxlib']}, flax {env['flax']}.",
        "",
        "| items | chunk | users/s | XLA temp (MB) | peak RSS (MB) | item table (MB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['items']:,} | {r['chunk']} | {r['users_per_s']:,.0f} | {r['xla_temp_mb']:,.1f} | "
        f"{r['peak_rss_mb']:,.0f} | {r['table_mb']:,.1f} |"
        for r in rows
    ]
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
