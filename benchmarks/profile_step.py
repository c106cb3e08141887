"""Where one SASRec training step's time goes, by category, from the JAX profiler and the compiled HLO.

    python benchmarks/profile_step.py --experiment sasrec_ml1m_bce     # or sasrec_ml1m_ce
    python benchmarks/profile_step.py --experiment sasrec_ml1m_ce --steps 5 --trace-dir /tmp/trace

One ML-1M batch (128 rows at max_len 200, the same rows every time) is trained for a few warm-up steps,
then `--steps` steps run under `jax.profiler.trace`. Each XLA thunk's time is attributed to a category
(attention op, projections, layer norm, dropout, loss, ...) from the Python source frames XLA keeps in the
compiled HLO's metadata. Times are the thunks' wall times on this machine: on a shared CPU they inflate.
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
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import environment, experiment_split
from recattn_jax.data.batches import next_item_arrays, target_positions
from recattn_jax.losses import PACKED_LOSSES
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

    categories = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{([^}]*)\}", line)
        if m:
            frame = re.search(r"stack_frame_id=(\d+)", m.group(2))
            op = re.search(r'op_name="([^"]*)"', m.group(2))
            c, o = (chain(int(frame.group(1))) if frame else ""), (op.group(1) if op else "")
            name = next((n for n, rule in CATEGORIES if rule(c, o)), "other (copies, optimizer, updates)")
            categories[m.group(1)] = name + (" [bwd]" if "transpose(" in o else "")
    return categories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="sasrec_ml1m_bce")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trace-dir", default=None)
    args = parser.parse_args(argv)
    loaded = experiment_split(args.experiment)
    if loaded is None:
        return 0
    config, split = loaded
    arrays = next_item_arrays(split.train_sequences, config.model.max_len)
    _, state, step, _ = build_training(config, split.data.num_items)
    batch = arrays.batch(
        np.random.default_rng(0).permutation(arrays.num_rows)[: config.train.batch_size], arrays.max_len
    )
    if config.loss.name in PACKED_LOSSES:  # as run_epoch does on one device
        batch["positions"] = target_positions(batch["targets"], max(1, batch["targets"].size // 8))
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
    print(f"profile_step.py --experiment {args.experiment}: {env['date']}, commit {env['commit']}, {env['machine']}")
    print("| category | ms/step | share | of it backward |\n|---|---|---|---|")
    whole = sum(total.values())
    for name, ms in total.most_common():
        print(f"| {name} | {ms:.1f} | {100 * ms / whole:.0f}% | {spent.get(name + ' [bwd]', 0.0):.1f} |")
    print(f"| total (XLA thunks) | {whole:.1f} | 100% | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
