"""kernels.linear_cross_entropy against the plain CE on materialised logits: values and gradients.

The reference (a scan over item chunks with a recomputing custom_vjp) must equal softmax CE over items
1..I-1 with the [P, I] logits built in full; the Triton kernels (backend `interpret`) must equal the
reference. Metric: max-abs error / max(max-abs reference, 1) (kernel_cases.rel_err).
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples
from kernel_cases import needs_interpreter, rel_err

import kernels


def plain_cross_entropy(hidden, table, targets, valid):
    """The CE of recattn_jax.losses.full_cross_entropy, per position, on [P, I] logits at HIGHEST."""
    with jax.default_matmul_precision("highest"):
        logits = jnp.einsum("pd,id->pi", hidden.astype(jnp.float32), table.astype(jnp.float32))
    logits = logits.at[:, 0].set(-jnp.inf)  # padding is not an item
    mask = valid & (targets != 0)
    safe = jnp.where(mask, targets, 1)
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]
    return jnp.where(mask, nll, 0.0)


def _inputs(seed, p, d, i, dtype, pad_frac=0.25):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.standard_normal((p, d)), dtype)
    table = jnp.asarray(rng.standard_normal((i, d)) * 0.5, dtype)
    targets = rng.integers(1, i, p)
    targets[rng.random(p) < pad_frac] = 0  # padding positions
    valid = rng.random(p) > 0.2
    weights = jnp.asarray(rng.standard_normal(p), jnp.float32)  # a random cotangent per position
    return hidden, table, jnp.asarray(targets, jnp.int32), jnp.asarray(valid), weights


def _value_and_grads(fn, hidden, table, targets, valid, weights):
    def loss(hidden, table):
        nll = fn(hidden, table, targets, valid)
        return jnp.sum(nll * weights), nll

    (_, nll), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(hidden, table)
    return nll, grads


def _op(chunk, backend="reference"):
    return lambda h, t, y, v: kernels.linear_cross_entropy(h, t, y, valid=v, chunk=chunk, backend=backend)


def _compare(got, want, fwd_tol, grad_tol):
    (nll, (dh, dt)), (want_nll, (want_dh, want_dt)) = got, want
    for x in (nll, dh, dt):
        assert np.isfinite(np.asarray(x, np.float32)).all()
    assert nll.dtype == jnp.float32
    assert rel_err(nll, want_nll) <= fwd_tol
    assert rel_err(dh, want_dh) <= grad_tol, "dhidden"
    assert rel_err(dt, want_dt) <= grad_tol, "dtable"


@pytest.mark.parametrize(
    ("p", "d", "i", "chunk"),
    [
        (37, 16, 100, 32),  # I not a multiple of chunk: 4 chunks, the last one 4/32 full
        (64, 50, 96, 32),  # I a multiple of chunk; D = 50
        (20, 8, 33, 32),  # a last chunk holding one item
        (50, 16, 100, 100),  # chunk == I: the single-matmul path
        (50, 16, 100, 4096),  # chunk > I
        (1, 16, 2, 1),  # one position, one item besides padding, one item per chunk
    ],
)
def test_reference_matches_plain_ce_fp32(p, d, i, chunk):
    args = _inputs(p * 7 + i, p, d, i, jnp.float32)
    got = _value_and_grads(_op(chunk), *args)
    want = _value_and_grads(plain_cross_entropy, *args)
    _compare(got, want, fwd_tol=1e-5, grad_tol=1e-5)


@settings(max_examples=examples(8))  # each example compiles twice; `thorough` runs 64
@given(
    p=st.integers(1, 80),
    d=st.sampled_from((4, 16, 50, 64)),
    i=st.integers(2, 300),
    chunk=st.sampled_from((1, 7, 16, 64, 128, 512)),
    pad_frac=st.sampled_from((0.0, 0.3, 1.0)),
    seed=st.integers(0, 2**16),
)
def test_reference_matches_plain_ce_random(p, d, i, chunk, pad_frac, seed):
    args = _inputs(seed, p, d, i, jnp.float32, pad_frac)
    got = _value_and_grads(_op(chunk), *args)
    want = _value_and_grads(plain_cross_entropy, *args)
    _compare(got, want, fwd_tol=1e-5, grad_tol=1e-5)


@pytest.mark.parametrize("chunk", [64, 1024])
def test_reference_bf16_accumulates_in_fp32(chunk):
    hidden, table, targets, valid, w = _inputs(11, 96, 64, 300, jnp.bfloat16)
    nll, (dh, dt) = _value_and_grads(_op(chunk), hidden, table, targets, valid, w)
    assert dh.dtype == jnp.bfloat16 and dt.dtype == jnp.bfloat16  # gradients in the input dtypes
    # the oracle sees the same bf16-rounded inputs, in fp32: only the outputs' rounding differs
    want = _value_and_grads(
        plain_cross_entropy, hidden.astype(jnp.float32), table.astype(jnp.float32), targets, valid, w
    )
    _compare((nll, (dh, dt)), want, fwd_tol=1e-5, grad_tol=1e-2)


def test_masked_positions_have_zero_loss_and_gradient():
    hidden, table, targets, _, w = _inputs(5, 40, 16, 50, jnp.float32, pad_frac=0.5)
    valid = jnp.arange(40) % 3 != 0
    nll, (dh, _) = _value_and_grads(_op(16), hidden, table, targets, valid, w)
    masked = np.asarray((targets == 0) | ~valid)
    assert masked.any() and (~masked).any()
    assert np.all(np.asarray(nll)[masked] == 0.0)
    assert np.all(np.asarray(dh)[masked] == 0.0)
    assert np.all(np.asarray(nll)[~masked] > 0.0)


def test_padding_row_gets_no_gradient_and_all_masked_gives_zeros():
    hidden, table, targets, valid, w = _inputs(6, 30, 16, 40, jnp.float32)
    _, (_, dt) = _value_and_grads(_op(16), hidden, table, targets, valid, w)
    assert np.all(np.asarray(dt)[0] == 0.0)  # row 0 is never a candidate nor a target
    nll, (dh, dt) = _value_and_grads(_op(16), hidden, table, jnp.zeros_like(targets), valid, w)
    assert not np.any(np.asarray(nll)) and not np.any(np.asarray(dh)) and not np.any(np.asarray(dt))


def test_valid_defaults_to_all_and_matches_full_cross_entropy_loss():
    from recattn_jax.losses import full_cross_entropy

    hidden, table, targets, _, _ = _inputs(7, 48, 16, 70, jnp.float32)
    nll = kernels.linear_cross_entropy(hidden, table, targets, chunk=32)
    mean = jnp.sum(nll) / jnp.sum(targets != 0)
    want = full_cross_entropy(hidden.reshape(4, 12, 16), table, targets.reshape(4, 12), None)
    assert float(jnp.abs(mean - want)) <= 1e-5 * float(jnp.abs(want))


def test_reference_under_vmap_equals_flattened_positions():
    """[B, L] positions mapped with vmap (table shared) give the same NLL and gradients as P = B * L."""
    hidden, table, targets, valid, w = _inputs(10, 24, 16, 50, jnp.float32)

    def loss(h, t, op):
        return jnp.sum(op(h, t) * w.reshape(h.shape[:-1]))

    def mapped(h, t):
        return jax.vmap(lambda h, y, v: _op(16)(h, t, y, v))(h, targets.reshape(3, 8), valid.reshape(3, 8))

    got = jax.grad(loss, argnums=(0, 1))(hidden.reshape(3, 8, 16), table, mapped)
    want = jax.grad(loss, argnums=(0, 1))(hidden, table, lambda h, t: _op(16)(h, t, targets, valid))
    assert rel_err(got[0].reshape(24, 16), want[0]) <= 1e-6 and rel_err(got[1], want[1]) <= 1e-6


def test_peak_memory_is_independent_of_the_catalogue():
    """XLA's temporary buffers for value_and_grad grow with I for the plain CE, not with chunks."""

    def temp_bytes(fn, i):
        hidden, table, targets, valid, w = _inputs(8, 512, 32, i, jnp.float32)

        def loss(h, t):
            return jnp.sum(fn(h, t, targets, valid) * w)

        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(hidden, table).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(_op(128), 1024), temp_bytes(_op(128), 16384)
    plain_large = temp_bytes(plain_cross_entropy, 16384)
    # growth from I = 1K to 16K: the [I, D] gradient and padded table only (16K * 32 * 4 B = 2 MiB each)
    assert large - small < 4 * 16384 * 32 * 4
    assert plain_large > 512 * 16384 * 4  # the plain CE holds at least one [P, I] fp32 array
    assert large < plain_large / 4


def test_bad_arguments_raise():
    hidden, table, targets, _, _ = _inputs(9, 8, 16, 10, jnp.float32)
    with pytest.raises(ValueError, match="same D"):
        kernels.linear_cross_entropy(hidden, table[:, :8], targets)
    with pytest.raises(ValueError, match="targets"):
        kernels.linear_cross_entropy(hidden, table, targets[:4])
    with pytest.raises(ValueError, match="valid"):
        kernels.linear_cross_entropy(hidden, table, targets, valid=jnp.ones(3, bool))
    with pytest.raises(ValueError, match="chunk"):
        kernels.linear_cross_entropy(hidden, table, targets, chunk=0)
    with pytest.raises(ValueError, match="backend"):
        kernels.linear_cross_entropy(hidden, table, targets, backend="cuda")
    if importlib.util.find_spec("triton") and importlib.util.find_spec("torch"):
        wide = jnp.zeros((8, 300), jnp.float32)
        with pytest.raises(ValueError, match="D <= 256"):
            kernels.linear_cross_entropy(wide, jnp.zeros((10, 300)), targets, backend="interpret")


def _sharded_nll(backend, shards, rows):
    """The CE over an item table split into `shards` blocks of `rows` (the last zero-padded, as
    ParallelLayout.fit_rows does): each shard's (lse, target logit) over its candidates, combined."""

    def nll(hidden, table, targets, valid):
        num_items = table.shape[0] - 1  # global ids 1..num_items are items; 0 and > num_items are not
        padded = jnp.concatenate([table, jnp.zeros((shards * rows - table.shape[0], table.shape[1]), table.dtype)])
        mask = valid & (targets != 0)
        lses, logits = [], []
        for k in range(shards):
            offset = k * rows
            local = targets - offset
            here = mask & (local >= 0) & (local < rows)
            lo, hi = jnp.clip(1 - offset, 0, rows), jnp.clip(num_items + 1 - offset, 0, rows)
            lse, target_logit = kernels.linear_lse_and_target_logit(
                hidden, padded[offset : offset + rows], local, has_target=here, candidates=(lo, hi), chunk=8,
                backend=backend,
            )  # fmt: skip
            lses.append(lse)
            logits.append(target_logit)
        lses = jnp.stack(lses)  # [shards, P]
        top = jax.lax.stop_gradient(jnp.max(lses, axis=0))  # as sharded_ce: pmax has no gradient
        total = top + jnp.log(jnp.sum(jnp.exp(lses - top), axis=0))
        return jnp.where(mask, total - sum(logits), 0.0)

    return nll


@pytest.mark.parametrize(("shards", "rows"), [(3, 12), (4, 16)])
def test_shards_combine_to_the_full_ce(shards, rows):
    """Candidates given as (lo, hi) per shard: padding (global 0) and mesh-padding rows never compete;
    with 4 x 16 rows for 31 items the last two shards have no candidate (lse = -inf, no NaN)."""
    args = _inputs(16, 30, 16, 32, jnp.float32)
    got = _value_and_grads(_sharded_nll("reference", shards, rows), *args)
    want = _value_and_grads(plain_cross_entropy, *args)
    _compare(got, want, fwd_tol=1e-5, grad_tol=1e-5)


# --- the Triton kernels (backend `interpret` on the CPU, `triton` on a GPU) against the reference ---


def _compare_backends(args, backend, fwd_tol, grad_tol):
    got = _value_and_grads(_op(4096, backend), *args)
    want = _value_and_grads(_op(64), *args)  # the reference, chunked
    _compare(got, want, fwd_tol, grad_tol)
    return got


@settings(max_examples=examples(6))
@given(
    p=st.integers(1, 70),
    d=st.sampled_from((8, 16, 50, 64)),
    i=st.integers(2, 150),
    pad_frac=st.sampled_from((0.0, 0.3, 1.0)),
    seed=st.integers(0, 2**16),
)
def test_interpret_matches_reference_fp32(p, d, i, pad_frac, seed):
    needs_interpreter()
    _compare_backends(_inputs(seed, p, d, i, jnp.float32, pad_frac), "interpret", fwd_tol=1e-5, grad_tol=1e-5)


def test_interpret_matches_reference_bf16():
    needs_interpreter()
    hidden, table, targets, valid, w = _inputs(12, 40, 50, 90, jnp.bfloat16)
    # the kernels round d logits to bf16 before their dots (tensor cores); the house bf16 tolerance, 3e-2
    _, (dh, dt) = _compare_backends((hidden, table, targets, valid, w), "interpret", fwd_tol=1e-5, grad_tol=3e-2)
    assert dh.dtype == jnp.bfloat16 and dt.dtype == jnp.bfloat16


def test_interpret_split_loops_and_masked_rows():
    """Several position and item blocks, both loops split into ranges whose fp32 partials the binding
    combines (log-sum-exp, sums); masked rows and the padding row get exact zeros."""
    needs_interpreter()
    from kernels.linear_cross_entropy.binding import block_config

    args = _inputs(13, 150, 16, 200, jnp.float32, pad_frac=0.3)
    cfg = block_config(150, 200, 16, jnp.float32, interpret=True)
    assert (cfg["split_i"], cfg["split_p"]) == (4, 3)
    nll, (dh, dt) = _compare_backends(args, "interpret", fwd_tol=1e-5, grad_tol=1e-5)
    masked = np.asarray((args[2] == 0) | ~args[3])
    assert np.all(np.asarray(nll)[masked] == 0.0) and np.all(np.asarray(dh)[masked] == 0.0)
    assert np.all(np.asarray(dt)[0] == 0.0)


def test_interpret_shards_combine_to_the_full_ce():
    needs_interpreter()
    args = _inputs(17, 30, 16, 32, jnp.float32)
    got = _value_and_grads(_sharded_nll("interpret", 4, 16), *args)
    want = _value_and_grads(plain_cross_entropy, *args)
    _compare(got, want, fwd_tol=1e-5, grad_tol=1e-5)


_KERNEL_NAMES = ("linear_ce_fwd_kernel", "linear_ce_bwd_dhidden_kernel", "linear_ce_bwd_dtable_kernel")


def test_triton_kernels_compile_for_sm90(tmp_path, monkeypatch):
    """The interpreter is not the compiler: each kernel x {fp32, bf16} compiles for sm_90 down to PTX,
    with the argument types the binding passes (Python int sizes are i32) and no fp64 instruction."""
    triton = pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # a private cache: other processes compile too
    if importlib.util.find_spec("torch") is not None:
        # an interpreted launch first: it must leave the compiler of this process working
        _value_and_grads(_op(16, "interpret"), *_inputs(15, 8, 16, 20, jnp.float32))
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels.linear_cross_entropy import triton_kernels
    from kernels.linear_cross_entropy.binding import block_config

    for dtype, name in ((jnp.float32, "fp32"), (jnp.bfloat16, "bf16")):
        cfg = block_config(13000, 50000, 64, dtype, interpret=False)
        meta = {k: cfg[k] for k in ("BLOCK_P", "BLOCK_I", "BLOCK_D")} | {"IEEE": dtype == jnp.float32, "UPCAST": False}
        rows = {"HIDDEN": f"*{name}", "TABLE": f"*{name}", "TARGETS": "*i32", "BOUNDS": "*i32", "LSE": "*fp32"}
        rows |= {"G_LSE": "*fp32", "G_TARGET": "*fp32"}
        sizes = {"P": "i32", "N_ITEMS": "i32", "D": "i32", "I_PER_SPLIT": "i32", "P_PER_SPLIT": "i32"}
        partials = {"LSE_PART": "*fp32", "TARGET_PART": "*fp32", "DHIDDEN_PART": "*fp32", "DTABLE": "*fp32"}
        signatures = {name: {**rows, **sizes, **partials} for name in _KERNEL_NAMES}
        for kernel_name, types in signatures.items():
            fn = getattr(triton_kernels, kernel_name)
            signature = {arg: types.get(arg, "constexpr") for arg in fn.arg_names}
            assert set(fn.arg_names) - set(meta) <= set(types), f"{kernel_name}: an argument without a type"
            constexprs = {(fn.arg_names.index(k),): v for k, v in meta.items()}
            src = ASTSource(fn, signature=signature, constexprs=constexprs)
            try:
                compiled = triton.compile(
                    src, target=GPUTarget("cuda", 90, 32), options={"num_warps": cfg["num_warps"]}
                )
            except RuntimeError as err:  # no ptxas in this triton build: PTX is what we check
                pytest.skip(f"triton cannot compile for sm_90 here: {err}")
            assert ".f64" not in compiled.asm["ptx"], f"{kernel_name} {name} does fp64 math"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_triton_gpu_matches_reference(dtype):
    if jax.default_backend() != "gpu":
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("jax_triton")
    args = _inputs(14, 3000, 64, 5000, dtype)
    with jax.default_matmul_precision("highest"):  # the oracle at full precision, not TF32
        want = _value_and_grads(_op(1024), *args)
    got = _value_and_grads(_op(4096, "triton"), *args)
    tol = (1e-5, 1e-4) if dtype == jnp.float32 else (2e-2, 3e-2)
    _compare(got, want, *tol)


@pytest.mark.gpu
def test_triton_inside_shard_map_matches_reference():
    """The item-sharded CE of the mesh (recattn_jax.parallel.sharded_ce) through jax_triton's call inside
    shard_map, on a 1 x 1 mesh of one GPU, against the one-device CE: values and gradients. The 1 x 1 mesh still
    types values by their manual axes, so the custom VJP's check runs; its axes of size 1 cannot show a missing
    sum over shards (the 4 x 2 CPU mesh does, through the interpreter: multidevice_checks.check_sharded_ce), and
    a multi-GPU mesh is untested."""
    if jax.default_backend() != "gpu":
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("jax_triton")
    from recattn_jax.config import MeshConfig
    from recattn_jax.losses import full_cross_entropy
    from recattn_jax.parallel.mesh import ParallelLayout, make_mesh
    from recattn_jax.parallel.sharded_ce import sharded_cross_entropy

    num_items = 999  # 1000 rows: the kernels' item splits and the reference's scan over chunks
    lay = ParallelLayout(make_mesh(MeshConfig(1, 1)), num_items)
    rng = np.random.default_rng(3)
    hidden = jnp.asarray(rng.standard_normal((16, 50, 64)), jnp.float32)
    table = jnp.asarray(rng.standard_normal((lay.rows, 64)) * 0.5, jnp.float32)
    targets = jnp.asarray(rng.integers(0, num_items + 1, (16, 50)), jnp.int32)
    loss = sharded_cross_entropy(lay, backend="triton")
    got, (dh, dt) = jax.jit(jax.value_and_grad(lambda h, t: loss(h, t, targets, None), argnums=(0, 1)))(hidden, table)
    with jax.default_matmul_precision("highest"):  # the oracle at full precision, not TF32
        want, (want_dh, want_dt) = jax.value_and_grad(
            lambda h, t: full_cross_entropy(h, t, targets, None), argnums=(0, 1)
        )(hidden, table[: num_items + 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for name, g, w in (("dhidden", dh, want_dh), ("dtable", dt[: num_items + 1], want_dt)):
        w = np.asarray(w)
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-4 * float(np.max(np.abs(w))), err_msg=name)
    assert not np.any(np.asarray(dt[num_items + 1 :])), "mesh-pad rows got a gradient"
