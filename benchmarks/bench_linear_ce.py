"""Linear cross-entropy (kernels.linear_cross_entropy) against XLA's logits + CE: time and peak memory.

Usage (CPU, recommender size): python benchmarks/bench_linear_ce.py --out lce_cpu.csv
Usage (GPU): python benchmarks/bench_linear_ce.py --out lce_gpu.csv   (I in {3.4k, 50k, 1M}, fp32 and bf16)
CPU smoke test: python benchmarks/bench_linear_ce.py --backend interpret --check-only
Impls: `xla` = einsum logits [P, I] + logsumexp (recattn_jax.losses.full_cross_entropy per position),
`reference_K` = the scan reference at chunk K, `triton` = the fused kernels (GPU only). Modes: fwd and
fwd+bwd (jit of value_and_grad w.r.t. hidden and table). Time: median (and min) of --repeats after
compile and warm-up, the impls interleaved round by round (a shared machine slows them alike).
Memory: XLA's temporary buffers of the compiled function (memory_analysis().temp_size_in_bytes: the
intermediates' peak, inputs and outputs excluded). Exits 1 if the check finds a mismatch.
"""

from __future__ import annotations

import argparse
import csv
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

CPU_SIZES = ((13000, 64, 3417),)  # ML-1M SASRec: ~13K target positions per batch, hidden 64, 3,417 rows
# at I = 1M, P = 4096 keeps XLA's [P, I] fp32 logits and their gradient (2 x 16 GiB) on one H200
GPU_SIZES = ((13000, 64, 3417), (13000, 64, 50000), (4096, 64, 1_000_000))
CPU_CHUNKS = (128, 256, 1024, 4096)  # the default chunk (128) and the one-matmul path at I = 3417
GPU_CHUNKS = (8192,)  # a GPU runs the reference as a fallback only: few, large chunks


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench_linear_ce.csv", help="CSV file to write")
    p.add_argument("--backend", default="triton", choices=["triton", "interpret"], help="the kernels' backend")
    p.add_argument("--check-only", action="store_true", help="run the correctness check and exit")
    p.add_argument("--sizes", nargs="*", default=None, help="P,D,I triples (default: CPU or GPU grid)")
    p.add_argument("--chunks", type=int, nargs="*", default=None, help="reference chunks (default: CPU or GPU list)")
    p.add_argument("--dtypes", nargs="*", default=None, help="float32 / bfloat16 (default: float32 on CPU)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--mem-gib", type=float, default=100.0, help="skip XLA where its [P, I] logits x 3 exceed this")
    return p.parse_args(argv)


def plain_cross_entropy(hidden, table, targets, valid):
    """XLA's logits + CE, per position: the [P, I] fp32 logits are materialised."""
    logits = jnp.einsum("pd,id->pi", hidden, table, preferred_element_type=jnp.float32)
    logits = logits.at[:, 0].set(-jnp.inf)  # padding is not an item
    mask = valid & (targets != 0)
    safe = jnp.where(mask, targets, 1)
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]
    return jnp.where(mask, nll, 0.0)


def _inputs(p, d, i, dtype, seed=0):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.standard_normal((p, d)) * 0.5, dtype)
    table = jnp.asarray(rng.standard_normal((i, d)) * 0.5, dtype)
    targets = rng.integers(1, i, p)
    targets[rng.random(p) < 0.1] = 0
    return hidden, table, jnp.asarray(targets, jnp.int32), jnp.asarray(rng.random(p) > 0.05)


def _loss_fn(impl):
    if impl == "xla":
        return plain_cross_entropy
    if impl.startswith("reference_"):
        chunk = int(impl.split("_")[1])
        return lambda h, t, y, v: kernels.linear_cross_entropy(h, t, y, valid=v, chunk=chunk, backend="reference")
    return lambda h, t, y, v: kernels.linear_cross_entropy(h, t, y, valid=v, backend=impl)


def _compiled(impl, mode, args):
    fn = _loss_fn(impl)
    hidden, table, targets, valid = args
    w = jnp.linspace(0.5, 1.5, hidden.shape[0], dtype=jnp.float32)  # a non-uniform cotangent

    def loss(h, t):
        return jnp.sum(fn(h, t, targets, valid) * w)

    f = jax.jit(loss if mode == "fwd" else jax.value_and_grad(loss, argnums=(0, 1)))
    return f.lower(hidden, table).compile()


def check(backend: str) -> bool:
    """The kernels (and the chunked reference) vs XLA's CE at HIGHEST precision; True when all match."""
    impls = [f"reference_{k}" for k in (7, 64)] + ([backend] if backend == "interpret" or _gpu() else [])
    ok = True
    for p, d, i, dtype in ((37, 50, 200, jnp.float32), (64, 64, 300, jnp.bfloat16)):
        args = _inputs(p, d, i, dtype, seed=1)
        exact = [a.astype(jnp.float32) for a in args[:2]]  # the oracle sees the same (rounded) inputs
        with jax.default_matmul_precision("highest"):  # no TF32 on a GPU: the oracle must be exact
            want_out = _compiled("xla", "fwd+bwd", (*exact, *args[2:]))(*exact)
        for impl in impls:
            with jax.default_matmul_precision("highest"):
                got = _compiled(impl, "fwd+bwd", args)(*args[:2])
            tol = 1e-4 if dtype == jnp.float32 else 3e-2
            for name, g, w in zip(
                ("loss", "dhidden", "dtable"), jax.tree.leaves(got), jax.tree.leaves(want_out), strict=True
            ):
                g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
                err = float(np.max(np.abs(g - w)) / max(float(np.max(np.abs(w))), 1.0))
                bad = not np.isfinite(err) or err > tol
                ok &= not bad
                print(
                    f"check {impl} P={p} D={d} I={i} {jnp.dtype(dtype).name} {name}: err={err:.2e}"
                    + (" MISMATCH" if bad else "")
                )
    return ok


def _gpu() -> bool:
    return jax.default_backend() == "gpu"


def bench(args, rows, p, d, i, dtype):
    """Every impl and mode at one size; the repeats interleave them, so a busy machine slows all alike."""
    inputs = _inputs(p, d, i, dtype)
    chunks = args.chunks or (GPU_CHUNKS if _gpu() else CPU_CHUNKS)
    impls = ["xla", *(f"reference_{k}" for k in chunks)] + (["triton"] if _gpu() else [])
    cases = {}
    for impl in impls:
        if impl == "xla" and 3 * p * i * 4 / 2**30 > args.mem_gib:
            print(f"skip xla P={p} I={i}: over --mem-gib")
            continue
        for mode in ("fwd", "fwd+bwd"):
            shape = dict(impl=impl, mode=mode, P=p, D=d, I=i, dtype=jnp.dtype(dtype).name)
            try:
                f = _compiled(impl, mode, inputs)
                jax.block_until_ready(f(*inputs[:2]))  # warm-up
            except Exception as err:  # e.g. out of memory for XLA at I = 1M
                print(" ".join(f"{k}={v}" for k, v in shape.items()), f"n/a ({type(err).__name__})")
                rows.append({**shape, "ms": "n/a"})
                continue
            cases[impl, mode] = (shape, f, [])
    for _ in range(args.repeats):
        for _, f, times in cases.values():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*inputs[:2]))
            times.append(time.perf_counter() - t0)
    for shape, f, times in cases.values():
        temp = f.memory_analysis().temp_size_in_bytes / 2**20
        ms = statistics.median(times) * 1e3
        row = {**shape, "ms": round(ms, 2), "min_ms": round(min(times) * 1e3, 2), "temp_mib": round(temp, 1)}
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not check(args.backend):
        print("correctness check FAILED")
        return 1
    if args.check_only:
        return 0
    sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes] if args.sizes else None
    sizes = sizes or (GPU_SIZES if _gpu() else CPU_SIZES)
    dtypes = (
        [jnp.dtype(x) for x in args.dtypes]
        if args.dtypes
        else ([jnp.float32, jnp.bfloat16] if _gpu() else [jnp.float32])
    )
    rows: list[dict] = []
    for p, d, i in sizes:
        for dtype in dtypes:
            bench(args, rows, p, d, i, dtype)
    meta = environment("triton", "jax-triton")
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[*meta, "impl", "mode", "P", "D", "I", "dtype", "ms", "min_ms", "temp_mib"]
        )
        writer.writeheader()
        for r in rows:
            writer.writerow({**meta, **r})
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
