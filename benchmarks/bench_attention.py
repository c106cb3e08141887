"""GPU benchmark of the fused Triton attention against XLA baselines, preceded by a correctness check.

Usage (GPU): python benchmarks/bench_attention.py --out bench.csv [--quick | --shapes recsys] [--max-b 1024]
CPU smoke test: python benchmarks/bench_attention.py --backend interpret --quick --check-only
Flops: fwd = 4*B*N*T*S*H (causal counted at half), bwd = 2.5x fwd. Roofline: H200, 989 TFLOP/s bf16
dense (fp32 runs on FMA units: 67 TFLOP/s), 4.8 TB/s HBM3e. The check compares against the reference at
HIGHEST matmul precision with per-dtype tolerances (kernels.tolerances); exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

import jax
import jax.numpy as jnp
import numpy as np

import kernels
from benchmarks.env_info import environment
from kernels.tolerances import tolerance

# H200 SXM datasheet: dense bf16 tensor-core and fp32 (non-tensor) peaks, HBM3e bandwidth
PEAK_TFLOPS = {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}
PEAK_TBPS = 4.8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench_attention.csv", help="CSV file to write")
    p.add_argument("--backend", default="triton", choices=["triton", "interpret"], help="our kernels' backend")
    p.add_argument("--quick", action="store_true", help="a small grid (minutes, not tens of minutes)")
    p.add_argument("--shapes", default="full", choices=["full", "recsys", "quick"], help="which grid to time")
    p.add_argument("--check-only", action="store_true", help="run the correctness check and exit")
    p.add_argument("--max-b", type=int, default=1024, help="skip batch sizes above this")
    p.add_argument("--max-t", type=int, default=2048, help="skip sequence lengths above this")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--mem-gib", type=float, default=100.0, help="skip shapes whose tensors exceed this")
    return p.parse_args(argv)


def _rand(shape, dtype, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _rel_err(got, want) -> float:
    got, want = (jnp.asarray(x, jnp.float32) for x in (got, want))
    return float(jnp.max(jnp.abs(got - want)) / jnp.maximum(jnp.max(jnp.abs(want)), 1.0))


def _check_one(name, fn, args, dtype, label) -> bool:
    """fn(backend, *args) -> scalar loss; ours vs the reference (at HIGHEST precision), value and grads."""
    n_diff = len(args) - 2  # the last two are the integer bounds
    grad = functools.partial(jax.value_and_grad, argnums=tuple(range(n_diff)))
    got = jax.jit(grad(lambda *a: fn(name, *a)))(*args)
    with jax.default_matmul_precision("highest"):  # JAX's GPU default is TF32, ~1e-3 off
        want = jax.jit(grad(lambda *a: fn("reference", *a)))(*args)
    fwd_tol, grad_tol = tolerance(dtype)
    ok = True
    names = ("loss", "dq", "dk", "dv")
    for what, g, w in zip(names, [got[0], *got[1]], [want[0], *want[1]], strict=True):
        err = _rel_err(g, w)
        bad = not np.isfinite(err) or err > (fwd_tol if what == "loss" else grad_tol)
        ok &= not bad
        print(f"check {name} {label} {jnp.dtype(dtype).name} {what}: err={err:.2e}" + (" MISMATCH" if bad else ""))
    return ok


def check(backend: str) -> bool:
    """Our backend vs the reference on padded inputs with a fully padded row; True when all match."""
    ok = True
    shapes = (
        [(3, 16, 16, 2, 50, True), (2, 8, 40, 1, 64, False)]
        if backend == "interpret"
        else [(8, 200, 200, 2, 50, True), (8, 64, 200, 2, 64, False), (4, 512, 512, 4, 128, True)]
    )
    dtypes = (jnp.float32,) if backend == "interpret" else (jnp.float32, jnp.bfloat16)
    for (b, t, s, n, h, causal), dtype in itertools.product(shapes, dtypes):
        q, k, v = _rand((b, t, n, h), dtype, 0), _rand((b, s, n, h), dtype, 1), _rand((b, s, n, h), dtype, 2)
        start = jnp.asarray(np.arange(b) % 3, jnp.int32).at[0].set(s // 2)
        end = jnp.full((b,), s, jnp.int32).at[0].set(s // 2).at[-1].set(s - 1)  # row 0 fully padded

        def attention_loss(be, q, k, v, start, end, causal=causal):
            o = kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=causal, backend=be)
            return jnp.sum(o.astype(jnp.float32) ** 2)

        label = f"attention B={b} T={t} S={s} N={n} H={h} causal={causal}"
        ok &= _check_one(backend, attention_loss, (q, k, v, start, end), dtype, label)

        def pool_loss(be, q, k, v, start, end):
            o = kernels.attention_pool(q, k, v, kv_start=start, kv_end=end, backend=be)
            return jnp.sum(o.astype(jnp.float32) ** 2)

        if t == s:  # one pool check per shape: the first query of each row
            label = f"attention_pool B={b} S={s} N={n} H={h}"
            ok &= _check_one(backend, pool_loss, (q[:, 0], k, v, start, end), dtype, label)
    return ok


def _time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    jax.block_until_ready(fn(*args))  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _impls(backend, causal):
    def ours(q, k, v):
        return kernels.attention(q, k, v, causal=causal, backend=backend)

    def ref(q, k, v):
        return kernels.attention(q, k, v, causal=causal, backend="reference")

    def dpa(impl):
        return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=impl)

    return {"triton": ours, "reference": ref, "xla_dpa": dpa("xla"), "cudnn_dpa": dpa("cudnn")}


def bench_attention(args, rows, b, t, s, n, h, dtype, causal):
    item = jnp.dtype(dtype).itemsize
    if 4 * b * max(t, s) * n * h * item * 3 / 2**30 > args.mem_gib or 4 * b * n * t * s * 4 / 2**30 > args.mem_gib:
        print(f"skip B={b} T={t} S={s} N={n} H={h}: over --mem-gib")
        return
    q, k, v = _rand((b, t, n, h), dtype, 0), _rand((b, s, n, h), dtype, 1), _rand((b, s, n, h), dtype, 2)
    flops = 4 * b * n * t * s * h * (0.5 if causal else 1.0)
    io_bytes = (2 * b * t + 2 * b * s) * n * h * item
    for name, fn in _impls(args.backend, causal).items():
        for mode in ("fwd", "fwd+bwd"):
            f = (
                jax.jit(fn)
                if mode == "fwd"
                else jax.jit(
                    jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v).astype(jnp.float32)), argnums=(0, 1, 2))
                )
            )
            shape = dict(
                op="attention", impl=name, mode=mode, B=b, T=t, S=s, N=n, H=h,
                dtype=jnp.dtype(dtype).name, causal=causal,
            )  # fmt: skip
            try:
                us = _time(f, q, k, v, repeats=args.repeats)
            except Exception as err:  # e.g. cuDNN needs bf16/fp16 or a supported head dim
                print(
                    f"{name} {mode} B={b} T={t} S={s} N={n} H={h} {jnp.dtype(dtype).name}: n/a ({type(err).__name__})"
                )
                rows.append({**shape, "us": "n/a"})
                continue
            fl = flops * (1.0 if mode == "fwd" else 3.5)
            by = io_bytes * (1.0 if mode == "fwd" else 2.5)
            tflops, tbps = fl / us / 1e6, by / us / 1e6
            row = dict(
                **shape,
                us=round(us, 1),
                tflops=round(tflops, 2),
                tbps=round(tbps, 3),
                roofline=round(max(tflops / PEAK_TFLOPS[jnp.dtype(dtype).name], tbps / PEAK_TBPS), 3),
            )
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def bench_pool(args, rows, b, s, n, h, dtype):
    q = _rand((b, n, h), dtype, 0)
    k, v = _rand((b, s, n, h), dtype, 1), _rand((b, s, n, h), dtype, 2)
    io_bytes = 2 * b * s * n * h * jnp.dtype(dtype).itemsize
    for name, be in (("triton", args.backend), ("reference", "reference")):
        f = jax.jit(lambda q, k, v, be=be: kernels.attention_pool(q, k, v, backend=be))
        us = _time(f, q, k, v, repeats=args.repeats)
        row = dict(
            op="attention_pool",
            impl=name,
            mode="fwd",
            B=b,
            T=1,
            S=s,
            N=n,
            H=h,
            dtype=jnp.dtype(dtype).name,
            causal=False,
            us=round(us, 1),
            tbps=round(io_bytes / us / 1e6, 3),
            roofline=round(io_bytes / us / 1e6 / PEAK_TBPS, 3),
        )
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def _meta():
    """GPU, date, commit and versions, stamped on every row."""
    return {"gpu": jax.devices()[0].device_kind, **environment("triton", "jax-triton")}


def benchmark_grid(name: str) -> list[tuple[str, tuple]]:
    """("attention", (B, T, S, N, H, dtype, causal)) and ("pool", (B, S, N, H, dtype)) rows of a named grid."""
    if name == "recsys":  # benchmarks/gpu_check.sh: SASRec-like self-attention, target attention, pooling
        attention = [
            (128, t, 200, n, h, dtype, t == 200)
            for t, n, h, dtype in itertools.product((200, 100), (1, 2), (50, 64), (jnp.bfloat16, jnp.float32))
        ]  # T = 200: causal self-attention; T = 100 candidates vs S = 200 history: target attention
        pool = list(itertools.product((128, 1024, 8192), (200,), (1, 2), (50, 64), (jnp.bfloat16, jnp.float32)))
    elif name == "quick":
        attention = [(128, t, t, 2, 64, jnp.bfloat16, c) for t, c in itertools.product((50, 200), (True, False))]
        attention.append((128, 1024, 200, 2, 64, jnp.bfloat16, False))
        pool = [(b, 200, 2, 64, jnp.bfloat16) for b in (1024, 8192)]
    else:
        attention = [
            (b, t, t, n, h, dtype, causal)
            for b, t, n, h, dtype, causal in itertools.product(
                (128, 1024), (50, 200, 512, 2048), (1, 2, 4), (50, 64, 128), (jnp.float32, jnp.bfloat16), (True, False)
            )
        ]
        attention += [(128, 1024, 200, 2, 64, dtype, False) for dtype in (jnp.float32, jnp.bfloat16)]
        pool = [(b, 200, 2, 64, dtype) for b, dtype in itertools.product((1024, 8192), (jnp.float32, jnp.bfloat16))]
    return [("attention", a) for a in attention] + [("pool", p) for p in pool]


def main(argv=None) -> int:
    args = parse_args(argv)
    if not check(args.backend):
        print("correctness check FAILED")
        return 1
    if args.check_only:
        return 0
    if args.backend != "triton" or jax.default_backend() != "gpu":
        print("timings need backend 'triton' on a GPU")
        return 2
    rows: list[dict] = []
    for op, shape in benchmark_grid("quick" if args.quick else args.shapes):
        if op == "pool":
            b, s, n, h, dtype = shape
            if b <= args.max_b:
                bench_pool(args, rows, b, s, n, h, dtype)
        else:
            b, t, s, n, h, dtype, causal = shape
            if b <= args.max_b and max(t, s) <= args.max_t:
                bench_attention(args, rows, b, t, s, n, h, dtype, causal)
    meta = _meta()
    with open(args.out, "w", newline="") as fh:
        keys = list(meta) + sorted(
            {k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99
        )
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({**meta, **r})
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
