"""Where one SASRec training step's time goes, by category, from the JAX profiler and the compiled HLO.

    python benchmarks/profile_step.py --experiment sasrec_ml1m_bce     # or sasrec_ml1m_ce
    python benchmarks/profile_step.py --experiment sasrec_ml1m_ce --steps 5 --trace-dir /tmp/trace
    python benchmarks/profile_step.py --experiment sasrec_ml1m_ce --epoch     # wall time of an epoch's steps
    python benchmarks/profile_step.py --experiment sasrec_ml1m_ce model.attn_dropout=weights   # with a lever

One ML-1M batch (128 rows at max_len 200, the same rows every time) is trained for a few warm-up steps,
then `--steps` steps run under `jax.profiler.trace`. Each XLA thunk's time is attributed to a category
(attention op, projections, layer norm, dropout, loss, ...) from the Python source frames XLA keeps in the
compiled HLO's metadata. Times are the thunks' wall times on this machine: on a shared CPU they inflate.

`--epoch`: instead, every step of one training epoch (the run's bucketed batches, every shape compiled
first) timed on its own (dispatch to result), grouped by the batch's length, then the same epoch's steps
dispatched back to back as a run does: the per-epoch cost without evaluation and checkpoints.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import environment, experiment_split, with_step_fields
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.bucketing import training_batches
from recattn_jax.train.step import build_training

# first match wins: (category, rule over the frames' "file:function" chain and the op name)
CATEGORIES = [
    ("dropout (random bits + mask)", lambda c, op: "dropout" in c.lower() or "_bernoulli" in op or "threefry" in op),
    ("negative sampling", lambda c, op: "sample_negatives" in c or "_randint" in op or "sort" in op),
    ("loss (logits, CE / BCE)", lambda c, op: "losses.py" in c or "linear_cross_entropy" in c),
    ("attention op (score, softmax, sum)", lambda c, op: "kernels/attention" in c or "dispatch.py" in c),
    ("q/k/v/out projections", lambda c, op: "layers/attention.py" in c),
    ("feed-forward", lambda c, op: "feed_forward.py" in c),
    ("layer norm, residuals, masks", lambda c, op: "transformer.py" in c),
    ("embeddings", lambda c, op: "embeddings.py" in c or "sasrec.py" in c),
]


OTHER = "other (copies, optimizer, updates)"
NO_SOURCE = "no source frame (XLA-made copies, broadcasts, layout changes, some backward dots)"


def source_chains(hlo: str) -> dict[str, str]:
    """instruction name -> its category (+ ' [bwd]' for the backward pass)."""
    tables = {"FileNames": [], "FunctionNames": [], "FileLocations": [], "StackFrames": []}
    section = None
    for line in hlo.splitlines():
        text = line.strip()
        if text in tables:
            section = text
        elif section and re.match(r"^\d+ ", text):
            body = text.split(" ", 1)[1]
            parsed = (
                body.strip('"') if section in ("FileNames", "FunctionNames") else dict(re.findall(r"(\w+)=(\d+)", body))
            )
            tables[section].append(parsed)
        elif section and not text:
            section = None
    files, funcs, locs, frames = (tables[k] for k in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"))

    @functools.cache
    def chain(frame: int) -> str:
        out, seen = [], set()
        while 0 < frame <= len(frames) and frame not in seen:
            seen.add(frame)
            loc = locs[int(frames[frame - 1]["file_location_id"]) - 1]
            out.append(f"{files[int(loc['file_name_id']) - 1]}:{funcs[int(loc.get('function_name_id', 1)) - 1]}")
            frame = int(frames[frame - 1].get("parent_frame_id", 0))
        return " ".join(out)

    categories, members, calls = {}, collections.defaultdict(list), {}
    computation = ""
    for line in hlo.splitlines():
        header = re.match(r"\s*(?:ENTRY )?%([\w.\-]+) .*\{\s*$", line)
        if header and " = " not in line:
            computation = header.group(1)
            continue
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = ", line)
        if not m:
            continue
        members[computation].append(m.group(1))
        callee = re.search(r"calls=%([\w.\-]+)", line)
        if callee:
            calls[m.group(1)] = callee.group(1)
        meta = re.search(r"metadata=\{([^}]*)\}", line)
        if meta:
            frame = re.search(r"stack_frame_id=(\d+)", meta.group(1))
            op = re.search(r'op_name="([^"]*)"', meta.group(1))
            c, o = (chain(int(frame.group(1))) if frame else ""), (op.group(1) if op else "")
            name = next((n for n, rule in CATEGORIES if rule(c, o)), OTHER)
            categories[m.group(1)] = name + (" [bwd]" if "transpose(" in o else "")
    # an instruction XLA made without source metadata (a fusion around a dot, a broadcast of a constant, a copy)
    # takes the category of the first instruction with one in the computation it calls, else NO_SOURCE: every
    # thunk of the step is counted somewhere
    for computation_members in members.values():
        for name in computation_members:
            if name not in categories:
                inner = (categories.get(i) for i in members.get(calls.get(name, ""), []))
                categories[name] = next((c for c in inner if c), NO_SOURCE)
    return categories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="sasrec_ml1m_bce")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trace-dir", default=None)
    parser.add_argument("--epoch", action="store_true", help="time one epoch's steps by batch length")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides on top of the experiment, e.g. model.hidden=128")
    args = parser.parse_args(argv)
    loaded = experiment_split(args.experiment, args.overrides)
    if loaded is None:
        return 0
    config, split = loaded
    arrays = next_item_arrays(split.train_sequences, config.model.max_len)
    _, state, step, _ = build_training(config, split.data.num_items)
    if args.epoch:
        return time_epoch(" ".join([args.experiment, *args.overrides]), config, arrays, state, step)
    batch = arrays.batch(
        np.random.default_rng(0).permutation(arrays.num_rows)[: config.train.batch_size], arrays.max_len
    )
    batch = with_step_fields(config, batch)
    key = jax.random.key(0)
    for _ in range(2):  # compile, warm up
        state, metrics = step(state, batch, key)
        jax.block_until_ready(metrics)
    categories = source_chains(step.lower(state, batch, key).compile().as_text())
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="profile_step-")
    with jax.profiler.trace(trace_dir):
        for _ in range(args.steps):
            state, metrics = step(state, batch, key)
            jax.block_until_ready(metrics)
    events = json.load(gzip.open(next(Path(trace_dir).rglob("*.trace.json.gz"))))["traceEvents"]
    spent = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event["name"] in categories:
            spent[categories[event["name"]]] += event["dur"] / 1000 / args.steps
    total = collections.Counter()
    for name, ms in spent.items():
        total[name.removesuffix(" [bwd]")] += ms
    env = environment()
    what = " ".join([f"--experiment {args.experiment}", *args.overrides])
    print(f"profile_step.py {what}: {env['date']}, commit {env['commit']}, {env['machine']}")
    print("| category | ms/step | share | of it backward |\n|---|---|---|---|")
    whole = sum(total.values())
    for name, ms in total.most_common():
        print(f"| {name} | {ms:.1f} | {100 * ms / whole:.0f}% | {spent.get(name + ' [bwd]', 0.0):.1f} |")
    print(f"| total (XLA thunks) | {whole:.1f} | 100% | |")
    return 0


def epoch_batches(config, arrays, epoch: int) -> list[dict]:
    """The epoch's training batches as `run_epoch` builds them on one device (bucketed, packed positions)."""
    rng = np.random.default_rng([config.seed, epoch])
    out = []
    for idx, length in training_batches(arrays, config.train.batch_size, arrays.max_len, rng, config.train.bucketing):
        out.append(with_step_fields(config, arrays.batch(idx, length)))
    return out


def time_epoch(experiment: str, config, arrays, state, step) -> int:
    key, weight = jax.random.key(0), np.float32(1.0)
    for batch in epoch_batches(config, arrays, 1):  # compiles every (length, positions) shape
        state, metrics = step(state, batch, key, weight)
        jax.block_until_ready(metrics)
    batches = epoch_batches(config, arrays, 2)
    by_length = collections.defaultdict(list)
    for batch in batches:
        started = time.perf_counter()
        state, metrics = step(state, batch, key, weight)
        jax.block_until_ready(metrics)
        by_length[batch["inputs"].shape[1]].append(time.perf_counter() - started)
    started = time.perf_counter()
    for batch in batches:
        state, metrics = step(state, batch, key, weight)
    jax.block_until_ready(metrics)
    back_to_back = time.perf_counter() - started
    env = environment()
    print(f"profile_step.py --experiment {experiment} --epoch: {env['date']}, commit {env['commit']}, {env['machine']}")
    print("| batch length | batches | step ms (median) | seconds in all |\n|---|---|---|---|")
    for length in sorted(by_length):
        times = by_length[length]
        print(f"| {length} | {len(times)} | {1000 * np.median(times):.0f} | {sum(times):.2f} |")
    print(f"| all, one at a time | {len(batches)} | | {sum(map(sum, by_length.values())):.2f} |")
    print(f"| all, back to back | {len(batches)} | | {back_to_back:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
