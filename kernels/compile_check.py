"""Compile every Triton kernel for sm_80 and sm_90 down to PTX, the way jax-triton 0.3.1 does on a GPU, on a CPU.

    python -m kernels.compile_check               # all ops, sm_80 and sm_90, one line per kernel compiled
    python -m kernels.compile_check --op attention --arch 90 --ptxas   # also assemble: registers, spills

Each case runs the real binding (jax.grad of the op, so forward and backward kernels) through
`jax.export(..., platforms=["cuda"])`: jax-triton's own lowering types the arguments the binding passes
(a Python float would become fp64 here, as on the GPU) and compiles each kernel with Triton's CUDA
backend for the requested compute capability. Every compiled kernel must give PTX with no fp64
instruction and shared memory within the architecture's limit. Exits 1 on any failure, 2 when
jax_triton is not installed (`pip install -e '.[compile]'`).

jax-triton imports only with a CUDA jaxlib: its GPU hooks (jaxlib's gpu_triton: compute capability,
kernel objects, launch parameters) are stubbed HERE, for the duration of the check, and never in the
runtime path. Compiling to PTX needs no GPU, no CUDA toolkit and no ptxas (Triton's LLVM emits PTX);
`--ptxas` assembles with the ptxas shipped in Triton's wheel to report registers and spills.

To add an op: write `<op>_cases() -> list[Case]` and add one entry to `OPS`.
Checked with jax-triton 0.3.1 and triton 3.6.0 (the GPU machine's) and 3.9.0 (CPU tests).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import itertools
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata

import jax
import jax.numpy as jnp

ARCHS = (80, 90)
# opt-in dynamic shared memory per block: A100 163 KB, H100/H200 227 KB
SHARED_LIMIT = {80: 166_912, 90: 232_448}
_FP64 = re.compile(r"\.f64\b")  # any fp64 register, conversion or instruction in the PTX


@dataclasses.dataclass(frozen=True)
class Case:
    """One traced call of an op's binding; every kernel it launches is compiled."""

    op: str
    label: str  # e.g. "bf16 causal H=50"
    fn: Callable  # traced with jax.export for platform cuda
    args: tuple[jax.ShapeDtypeStruct, ...]


@dataclasses.dataclass
class Compiled:
    kernel: str
    arch: int
    config: str  # constexprs, num_warps, num_stages
    shared: int = 0
    ptx: str = ""
    error: str = ""


_DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
_HEAD_DIMS = (50, 64, 128)


def _grad_of_sum(op: Callable, n_diff: int) -> Callable:
    """jax.grad of sum(op(...)) over the first n_diff arguments: traces forward and backward kernels."""

    def loss(*args):
        return jnp.sum(op(*args).astype(jnp.float32))

    return jax.grad(loss, argnums=tuple(range(n_diff)))


def attention_cases() -> list[Case]:
    from kernels.attention.binding import attention_triton

    b, t, n = 2, 200, 2  # T = S = 200: the tables' full block sizes (shorter sequences shrink them)
    cases = []
    for (name, dtype), causal, h in itertools.product(_DTYPES.items(), (False, True), _HEAD_DIMS):
        x = jax.ShapeDtypeStruct((b, t, n, h), dtype)
        bound = jax.ShapeDtypeStruct((b,), jnp.int32)

        def op(q, k, v, start, end, causal=causal, h=h):
            return attention_triton(q, k, v, start, end, causal, 1.0 / math.sqrt(h), interpret=False)

        label = f"{name} {'causal' if causal else 'full'} H={h}"
        cases.append(Case("attention", label, _grad_of_sum(op, 3), (x, x, x, bound, bound)))
    return cases


def attention_pool_cases() -> list[Case]:
    from kernels.attention_pool.binding import attention_pool_triton

    b, s, n = 2, 200, 2
    cases = []
    for (name, dtype), h in itertools.product(_DTYPES.items(), _HEAD_DIMS):
        q = jax.ShapeDtypeStruct((b, n, h), dtype)
        kv = jax.ShapeDtypeStruct((b, s, n, h), dtype)
        bound = jax.ShapeDtypeStruct((b,), jnp.int32)

        def op(q, k, v, start, end, h=h):
            return attention_pool_triton(q, k, v, start, end, 1.0 / math.sqrt(h), interpret=False)

        cases.append(Case("attention_pool", f"{name} H={h}", _grad_of_sum(op, 3), (q, kv, kv, bound, bound)))
    return cases


def linear_cross_entropy_cases() -> list[Case]:
    """The full CE's call of the binding (row 0 = padding, candidates [1, I), target 0 = no target), at a
    recommender's shapes: P positions in a batch, D in {50, 64} (50 padded to BLOCK_D 64), I = ML-1M's catalogue."""
    from kernels.linear_cross_entropy.binding import linear_lse_and_target_logit_triton

    p, i = 256, 3417
    cases = []
    for (name, dtype), d in itertools.product(_DTYPES.items(), (50, 64)):
        hidden = jax.ShapeDtypeStruct((p, d), dtype)
        table = jax.ShapeDtypeStruct((i, d), dtype)
        targets = jax.ShapeDtypeStruct((p,), jnp.int32)

        def op(hidden, table, targets):
            mask = targets != 0
            bounds = jnp.array([1, table.shape[0]], jnp.int32)
            lse, target_logit = linear_lse_and_target_logit_triton(
                hidden, table, targets, mask, bounds, interpret=False
            )
            return jnp.where(mask, lse - target_logit, 0.0)

        label = f"{name} D={d} I={i}"
        cases.append(Case("linear_cross_entropy", label, _grad_of_sum(op, 2), (hidden, table, targets)))
    return cases


# op name -> its cases; one entry per fused op
OPS: dict[str, Callable[[], list[Case]]] = {
    "attention": attention_cases,
    "attention_pool": attention_pool_cases,
    "linear_cross_entropy": linear_cross_entropy_cases,
}


class _StubKernel:
    """Stands in for jaxlib's TritonKernel: keeps what jax-triton compiled instead of loading it."""

    def __init__(self, name, num_warps, num_ctas, shared_mem_bytes, binary, ttir, compute_capability):
        self.shared, self.ptx = shared_mem_bytes, binary


class _StubCall:
    """Stands in for jaxlib's TritonKernelCall: serialising the launch is all the lowering asks of it."""

    def __init__(self, *args, **kwargs):
        pass

    def to_proto(self, name, metadata):
        return b""


@contextlib.contextmanager
def _jax_triton_on_cpu(arch: list[int]) -> Iterator:
    """jax_triton importable and lowering for cuda without a CUDA jaxlib; `arch[0]` is the target."""
    from jax._src.lib import gpu_triton

    stubs = {
        "get_compute_capability": lambda device: arch[0],
        "get_serialized_metadata": lambda *args: b"",
        "TritonKernel": _StubKernel,
        "TritonKernelCall": _StubCall,
        "TritonAutotunedKernelCall": _StubCall,
        "create_array_parameter": lambda *args: None,
        "create_scalar_parameter": lambda *args: None,
    }
    saved = {name: getattr(gpu_triton, name, None) for name in stubs}
    for name, stub in stubs.items():
        setattr(gpu_triton, name, stub)
    import jax_triton

    import kernels.triton_launch as launch_module

    # the runtime path refuses to run without a GPU; here nothing runs, it only lowers
    require = launch_module.require_gpu_triton
    launch_module.require_gpu_triton = lambda: jax_triton
    try:
        yield jax_triton
    finally:
        launch_module.require_gpu_triton = require
        for name, value in saved.items():
            if value is None:
                delattr(gpu_triton, name)
            else:
                setattr(gpu_triton, name, value)


def _compile_case(case: Case, arch: int, arch_box: list[int]) -> list[Compiled]:
    """Lower the case for cuda at `arch`; one Compiled per kernel launch that jax-triton compiled."""
    from jax_triton import triton_lib

    arch_box[0] = arch
    triton_lib._COMPILED_KERNEL_CACHE.clear()  # every case compiles all its kernels, none from a cache
    original = triton_lib.get_or_create_triton_kernel
    compiled: list[Compiled] = []

    def recording(*args, **kwargs):
        fn = args[2]
        params = " ".join(f"{k}={v}" for k, v in sorted(kwargs["metaparams"].items()) if k not in ("UPCAST",))
        record = Compiled(fn.__name__, arch, f"{params} warps={kwargs['num_warps']} stages={kwargs['num_stages']}")
        compiled.append(record)
        try:
            kernel, attrs = original(*args, **kwargs)
        except Exception as err:
            record.error = f"{type(err).__name__}: {_first_line(err)}"
            raise
        record.shared, record.ptx = kernel.shared, kernel.ptx
        return kernel, attrs

    triton_lib.get_or_create_triton_kernel = recording
    jax.clear_caches()  # a cached lowering from another arch would compile nothing
    try:
        jax.export.export(
            jax.jit(case.fn),
            platforms=["cuda"],
            disabled_checks=[jax.export.DisabledSafetyCheck.custom_call("triton_kernel_call")],
        )(*case.args)
    except Exception as err:
        if not compiled or not compiled[-1].error:  # failed outside a kernel compile: report it as the case's
            compiled.append(Compiled("(lowering)", arch, "", error=f"{type(err).__name__}: {_first_line(err)}"))
    finally:
        triton_lib.get_or_create_triton_kernel = original
    if not compiled:
        compiled.append(Compiled("(none)", arch, "", error="no kernel was compiled: the case launches none"))
    return compiled


def _first_line(err: Exception) -> str:
    # Triton's CompilationError puts the source first and the reason last
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else repr(err))[:300]


def _problems(c: Compiled) -> list[str]:
    if c.error:
        return [c.error]
    problems = []
    if f".target sm_{c.arch}" not in c.ptx:
        problems.append(f"no PTX for sm_{c.arch}")
    fp64 = sorted({line.strip().split()[0] for line in c.ptx.splitlines() if _FP64.search(line)})
    if fp64:
        problems.append(f"fp64 in PTX: {', '.join(fp64[:5])}")
    if c.shared > SHARED_LIMIT[c.arch]:
        problems.append(f"shared memory {c.shared} B > {SHARED_LIMIT[c.arch]} B")
    return problems


def _ptxas_report(c: Compiled) -> str:
    """Registers and spill bytes from Triton's bundled ptxas (informational)."""
    import triton

    ptxas = triton.knobs.nvidia.ptxas.path
    target = f"sm_{c.arch}a" if c.arch == 90 else f"sm_{c.arch}"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as fh:
        fh.write(c.ptx)
        fh.flush()
        cmd = [ptxas, f"-arch={target}", "-v", fh.name, "-o", "/dev/null"]
        out = subprocess.run(cmd, capture_output=True, text=True)
    log = out.stdout + out.stderr
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    if out.returncode != 0:
        return f" ptxas FAILED: {log.strip().splitlines()[-1] if log.strip() else out.returncode}"
    return f" regs={regs.group(1) if regs else '?'} spill={spills.group(1) if spills else '?'}B"


def run(ops: list[str], archs: list[int], ptxas: bool = False, only: str = "") -> int:
    """Compile every case of `ops` for every arch; prints one line per kernel, returns the failure count."""
    versions = {name: _version(name) for name in ("jax", "jax-triton", "triton")}
    print("compile check: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; archs {archs}")
    failures = 0
    arch_box = [archs[0]]
    start = time.perf_counter()
    with _jax_triton_on_cpu(arch_box):
        for op in ops:
            for case, arch in itertools.product(OPS[op](), archs):
                if only not in case.label:
                    continue
                for c in _compile_case(case, arch, arch_box):
                    problems = _problems(c)
                    failures += bool(problems)
                    status = "FAIL" if problems else "ok  "
                    detail = "; ".join(problems) if problems else f"shared={c.shared}B ptx={len(c.ptx)}B"
                    if ptxas and not problems:
                        detail += _ptxas_report(c)
                    print(f"{status} {case.op:<20} {case.label:<18} sm_{arch} {c.kernel:<32} {c.config}  {detail}")
                    sys.stdout.flush()
    print(f"{'FAILED' if failures else 'passed'}: {failures} failure(s) in {time.perf_counter() - start:.0f} s")
    return failures


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--op", action="append", choices=sorted(OPS), help="only these ops (default: all)")
    p.add_argument("--arch", action="append", type=int, choices=ARCHS, help="only these archs (default: 80, 90)")
    p.add_argument("--ptxas", action="store_true", help="also assemble with Triton's ptxas: registers, spills")
    p.add_argument("--only", default="", help="only cases whose label contains this, e.g. 'fp32 causal'")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [m for m in ("triton", "jax_triton") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"compile check needs {' and '.join(missing)}: pip install -e '.[compile]'")
        return 2
    return 1 if run(args.op or list(OPS), args.arch or list(ARCHS), args.ptxas, args.only) else 0


if __name__ == "__main__":
    sys.exit(main())
