"""Launching one @triton.jit kernel from JAX, on a GPU (jax_triton) or on the CPU (Triton's interpreter).

A kernel is named by (module, function) and called with (inputs, runtime scalars, outputs, constexprs),
the argument order jax_triton uses. The `interpret` path runs the SAME kernel source through Triton's
interpreter inside `jax.pure_callback` (numpy -> torch CPU tensors -> launch -> numpy), so the
surrounding custom_vjp, jit and grad run unchanged on a CPU-only machine.

Nothing here imports torch, triton or jax_triton at module import time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from kernels.mesh_axes import vary_like

GPU_HINT = "backend 'triton' needs a CUDA GPU and jax-triton==0.3.1: pip install -e '.[gpu]'"


def next_power_of_2(x: int) -> int:
    return 1 << max(int(x) - 1, 0).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def require_gpu_triton():
    """jax_triton, imported lazily; a clear RuntimeError where the GPU path cannot run."""
    if jax.default_backend() != "gpu":
        raise RuntimeError(f"{GPU_HINT} (JAX's default backend is {jax.default_backend()!r})")
    try:
        import jax_triton
    except ImportError as err:
        raise RuntimeError(f"{GPU_HINT} (import jax_triton failed: {err})") from err
    return jax_triton


@contextlib.contextmanager
def _interpret_mode():
    """Run @triton.jit code through Triton's interpreter for the duration of one CPU launch.

    triton decides compiled-vs-interpreted when a function is decorated (TRITON_INTERPRET at import
    time), and triton.language's own @jit helpers (tl.max, tl.sum, ...) were decorated long before
    we get here. So, only while the launch runs: the interpret knob is on (constexpr helpers return
    plain values) and a call to any JITFunction from interpreted code runs its interpreted twin.
    The kernel modules stay compiled JITFunctions, so the GPU path in the same process is untouched.
    """
    import triton
    from triton.runtime.jit import JITFunction

    knobs = getattr(triton, "knobs", None)  # triton >= 3.3 reads the flag through knobs
    old_env = os.environ.get("TRITON_INTERPRET")
    had_call = "__call__" in JITFunction.__dict__
    old_call = JITFunction.__dict__.get("__call__")
    os.environ["TRITON_INTERPRET"] = "1"
    if knobs is not None:
        knobs.runtime.interpret = True
    JITFunction.__call__ = _interpreted_device_call
    try:
        yield
    finally:
        if had_call:
            JITFunction.__call__ = old_call
        else:
            del JITFunction.__call__
        if knobs is not None:
            del knobs.runtime.interpret  # back to reading the environment
        if old_env is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old_env


def _interpreted_device_call(jit_fn, *args, **kwargs):
    """A @jit function called from interpreted code, run by its interpreted twin.

    InterpretedFunction.__call__ (triton 3.6 to 3.9) patches triton.language for the interpreter and never
    restores it, which breaks every later compile in the process (jax-triton on a GPU, the compile check):
    patch and restore here instead. The scopes nest, so calls inside calls restore in order.
    """
    from triton.runtime.interpreter import InterpreterError, _patch_lang

    twin = _interpreted(jit_fn.fn)
    scope = _patch_lang(twin.fn)
    try:
        return twin.rewrite()(*args, **kwargs)
    except Exception as err:
        raise InterpreterError(repr(err)) from err
    finally:
        scope.restore()


@functools.cache
def _interpreted(fn):
    """The interpreted twin of a @triton.jit function's Python source."""
    from triton.runtime.interpreter import InterpretedFunction

    return InterpretedFunction(fn)


# interpreted launches patch process-wide state (the knob, JITFunction.__call__): one at a time
_INTERPRET_LOCK = threading.Lock()


def _kernel(module: str, name: str, interpret: bool):
    jitted = getattr(importlib.import_module(module), name)
    return _interpreted(jitted.fn) if interpret else jitted


def _torch_dtype(dtype: np.dtype):
    import torch

    return {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.int32): torch.int32,
        np.dtype(jax.numpy.bfloat16): torch.bfloat16,
        np.dtype(np.float16): torch.float16,
    }[np.dtype(dtype)]


def _to_torch(x: np.ndarray):
    import torch

    x = np.ascontiguousarray(x)
    if x.dtype == jax.numpy.bfloat16:  # numpy has no bf16: move the raw bits
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(x.copy())


def _to_numpy(t, dtype: np.dtype) -> np.ndarray:
    import torch

    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(jax.numpy.bfloat16).astype(dtype, copy=False)
    return t.numpy().astype(dtype, copy=False)


def _interpret_call(module, name, grid, scalars, out_shapes, constexprs, *arrays):
    import torch

    kernel = _kernel(module, name, interpret=True)
    # the interpreter turns a Python float into fp32 (tl.cast in the kernels), but not an np.float32
    scalars = tuple(float(x) if isinstance(x, np.floating) else x for x in scalars)
    inputs = [_to_torch(np.asarray(a)) for a in arrays]
    # outputs start as NaN so an element the kernel forgets to write fails every test
    outputs = [torch.full(s.shape, float("nan"), dtype=_torch_dtype(s.dtype)) for s in out_shapes]
    with _INTERPRET_LOCK, _interpret_mode():
        kernel[grid](*inputs, *scalars, *outputs, **constexprs)
    return tuple(_to_numpy(t, s.dtype) for t, s in zip(outputs, out_shapes, strict=True))


def launch(
    module: str,
    name: str,
    *,
    grid: tuple[int, ...],
    arrays: Sequence[jax.Array],
    scalars: Sequence[int | float | np.float32],
    out_shapes: Sequence[jax.ShapeDtypeStruct],
    constexprs: dict[str, Any],
    interpret: bool,
    num_warps: int = 4,
    num_stages: int = 2,
) -> tuple[jax.Array, ...]:
    """Run kernel `module.name` over `grid`; returns the outputs described by `out_shapes`.

    Inside `shard_map` the outputs are typed as varying over every mesh axis that one of `arrays` varies over
    (kernels.mesh_axes): a launch returns them typed as the same on every device, which a custom VJP's check
    refuses and a psum would count once per device; outside it, unchanged."""
    out_shapes = tuple(jax.ShapeDtypeStruct(s.shape, s.dtype) for s in out_shapes)
    if interpret:
        callback = functools.partial(_interpret_call, module, name, grid, tuple(scalars), out_shapes, dict(constexprs))
        # vmap is folded into the batch axis one level up (kernels.batching); sequential is the fallback
        outs = jax.pure_callback(callback, out_shapes, *arrays, vmap_method="sequential")
        return tuple(vary_like(x, *arrays) for x in outs)
    jt = require_gpu_triton()
    outs = jt.triton_call(
        *arrays,
        *scalars,
        kernel=_kernel(module, name, interpret=False),
        out_shape=out_shapes,
        grid=grid,
        num_warps=num_warps,
        num_stages=num_stages,
        **constexprs,
    )
    return tuple(vary_like(x, *arrays) for x in outs)
