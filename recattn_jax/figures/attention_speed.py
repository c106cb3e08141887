"""Figure 4: attention time against sequence length for every backend on this machine.

Times `kernels.attention` (causal self-attention as in SASRec, forward and forward+backward) here: the
reference on CPU; on a GPU also the Triton kernels and `jax.nn.dot_product_attention` with XLA and cuDNN.
GPU numbers measured elsewhere are read from a cached CSV of benchmarks/bench_attention.py
(docs/results/bench_attention.csv) when present, and the figure says when they were made.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import pandas as pd

import kernels
from recattn_jax.figures.output import RESULTS_DIR, made_on, pyplot, save_figure, today, write_table

CACHED = RESULTS_DIR / "bench_attention.csv"


def backends() -> dict:
    """Name -> attention(q, k, v) for every backend this machine runs."""
    out: dict[str, Callable[..., jax.Array]] = {
        "reference": lambda q, k, v: kernels.attention(q, k, v, causal=True, backend="reference")
    }
    if jax.default_backend() == "gpu":
        if kernels.resolve_backend("auto") is kernels.Backend.TRITON:
            out["triton"] = lambda q, k, v: kernels.attention(q, k, v, causal=True, backend="triton")
        for impl in ("xla", "cudnn"):
            out[impl] = lambda q, k, v, impl=impl: jax.nn.dot_product_attention(
                q.astype(jnp.bfloat16),
                k.astype(jnp.bfloat16),
                v.astype(jnp.bfloat16),
                is_causal=True,
                implementation=impl,
            )
    return out


def _time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(lengths, batch: int, heads: int, head_dim: int, repeats: int) -> pd.DataFrame:
    rows = []
    device = jax.devices()[0]
    for name, fn in backends().items():
        fwd = jax.jit(fn)
        bwd = jax.jit(jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v).astype(jnp.float32)), argnums=(0, 1, 2)))
        for t in lengths:
            keys = jax.random.split(jax.random.key(t), 3)
            q, k, v = (jax.random.normal(key, (batch, t, heads, head_dim), jnp.float32) for key in keys)
            for mode, f in (("fwd", fwd), ("fwd+bwd", bwd)):
                try:
                    us = _time(f, q, k, v, repeats=repeats) * 1e6
                except Exception as e:  # e.g. cuDNN refusing a shape: reported, not fatal
                    print(f"attention_speed: {name} {mode} T={t}: n/a ({type(e).__name__})")
                    continue
                rows.append(
                    {"impl": name, "mode": mode, "B": batch, "T": t, "N": heads, "H": head_dim, "us": round(us, 1)}
                )
    out = pd.DataFrame(rows)
    out["device"] = f"{device.platform}: {getattr(device, 'device_kind', device)}"
    out["measured"] = today()
    return out


def make(out_dir: Path, quick: bool, runs) -> list[Path]:
    del runs
    lengths = [16, 64] if quick else [16, 32, 64, 128, 256, 512]
    here = measure(lengths, batch=4 if quick else 32, heads=1, head_dim=64, repeats=3 if quick else 10)
    tables = [here]
    notes = [f"Measured here: {here['device'].iloc[0]}, {today()}; median of repeats after a compile."]
    if CACHED.exists():
        cached = pd.read_csv(CACHED)
        cached = cached[
            (cached.get("op", "attention") == "attention") & pd.to_numeric(cached["us"], errors="coerce").notna()
        ]
        if not cached.empty:
            cached = cached.assign(us=pd.to_numeric(cached["us"]), device=cached.get("gpu", "cached GPU"))
            cached["measured"] = made_on(CACHED)
            tables.append(cached[[c for c in here.columns if c in cached]])
            notes.append(f"Cached: {CACHED.relative_to(RESULTS_DIR.parents[1])}, made {made_on(CACHED)}.")
    else:
        notes.append(
            "No cached GPU results (docs/results/bench_attention.csv); on a GPU run "
            "`python benchmarks/bench_attention.py --out docs/results/bench_attention.csv`."
        )
    table = pd.concat(tables, ignore_index=True)
    paths = write_table(table, out_dir / "attention_speed", "Attention time against sequence length", notes)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, mode in zip(axes, ("fwd", "fwd+bwd"), strict=True):
        part = table[table["mode"] == mode]
        for (device, impl), rows in part.groupby(["device", "impl"], sort=False):
            rows = rows.groupby("T", as_index=False)["us"].median()
            ax.plot(rows["T"], rows["us"], marker="o", label=f"{impl} ({device})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (causal)")
        ax.set_ylabel("µs (median)")
        ax.set_title(mode)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "attention_speed.png", footnote=" ".join(notes)))
    return paths
