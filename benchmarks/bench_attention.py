"""GPU benchmark of the fused Triton attention against XLA baselines, preceded by a correctness check.

Usage (GPU): python benchmarks/bench_attention.py --out bench.csv [--quick] [--max-b 1024] [--max-t 2048]
CPU smoke test: python benchmarks/bench_attention.py --backend interpret --quick --check-only
Flops: fwd = 4*B*N*T*S*H (causal counted at half), bwd = 2.5x fwd. Roofline: H200, 790 TFLOP/s bf16
dense, 4.3 TB/s. Exits non-zero if the check finds a mismatch.
"""

from __future__ import annotations

import argparse
import csv
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

PEAK_TFLOPS, PEAK_TBPS = 790.0, 4.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench_attention.csv", help="CSV file to write")
    p.add_argument("--backend", default="triton", choices=["triton", "interpret"], help="our kernels' backend")
    p.add_argument("--quick", action="store_true", help="a small grid (minutes, not tens of minutes)")
    p.add_argument("--check-only", action="store_true", help="run the correctness check and exit")
    p.add_argument("--max-b", type=int, default=1024, help="skip batch sizes above this")
    p.add_argument("--max-t", type=int, default=2048, help="skip sequence lengths above this")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--mem-gib", type=float, default=100.0, help="skip shapes whose tensors exceed this")
    return p.parse_args(argv)


def _rand(shape, dtype, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def check(backend: str) -> bool:
    """Our backend vs the reference on padded inputs with a fully padded row; True when all match."""
    ok = True
    shapes = (
        [(3, 16, 16, 2, 50, True), (2, 8, 40, 1, 64, False)]
        if backend == "interpret"
        else [(8, 200, 200, 2, 50, True), (8, 64, 200, 2, 64, False), (4, 512, 512, 4, 128, True)]
    )
    for b, t, s, n, h, causal in shapes:
        q, k, v = (
            _rand((b, t, n, h), jnp.float32, 0),
            _rand((b, s, n, h), jnp.float32, 1),
            _rand((b, s, n, h), jnp.float32, 2),
        )
        start = jnp.asarray(np.arange(b) % 3, jnp.int32).at[0].set(s // 2)
        end = jnp.full((b,), s, jnp.int32).at[0].set(s // 2).at[-1].set(s - 1)  # row 0 fully padded

        def loss(be, q, k, v, start=start, end=end, causal=causal):
            return jnp.sum(kernels.attention(q, k, v, kv_start=start, kv_end=end, causal=causal, backend=be) ** 2)

        got = jax.jit(jax.value_and_grad(lambda *a: loss(backend, *a), argnums=(0, 1, 2)))(q, k, v)
        want = jax.jit(jax.value_and_grad(lambda *a: loss("reference", *a), argnums=(0, 1, 2)))(q, k, v)
        for name, g, w in zip(("loss", "dq", "dk", "dv"), [got[0], *got[1]], [want[0], *want[1]], strict=True):
            err = float(jnp.max(jnp.abs(g - w)) / jnp.maximum(jnp.max(jnp.abs(w)), 1.0))
            bad = not np.isfinite(err) or err > 1e-4
            ok &= not bad
            print(
                f"check {backend} B={b} T={t} S={s} N={n} H={h} causal={causal} {name}: err={err:.2e}"
                + (" MISMATCH" if bad else "")
            )
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
                roofline=round(max(tflops / PEAK_TFLOPS, tbps / PEAK_TBPS), 3),
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
    bs, ts, ns, hs = (
        ((128,), (50, 200), (2,), (64,))
        if args.quick
        else ((128, 1024), (50, 200, 512, 2048), (1, 2, 4), (50, 64, 128))
    )
    dtypes = (jnp.bfloat16,) if args.quick else (jnp.float32, jnp.bfloat16)
    for b, t, n, h, dtype, causal in itertools.product(bs, ts, ns, hs, dtypes, (True, False)):
        if b <= args.max_b and t <= args.max_t:
            bench_attention(args, rows, b, t, t, n, h, dtype, causal)
    for dtype in dtypes:  # target attention: T candidates vs S history
        bench_attention(args, rows, min(128, args.max_b), 1024, 200, 2, 64, dtype, False)
        for b in (1024, 8192):
            bench_pool(args, rows, b, 200, 2, 64, dtype)
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
