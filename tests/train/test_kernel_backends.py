"""SASRec's loss and gradients through the Triton kernels (Triton's CPU interpreter) match the reference."""

import jax
import numpy as np
import pytest
from flax import nnx

from recattn_jax.config import to_config
from recattn_jax.losses import next_item_loss
from recattn_jax.models import build_model

pytest.importorskip("torch", reason="Triton's interpreter needs torch CPU tensors: pip install -e '.[test]'")
pytest.importorskip("triton", reason="the interpret backend runs the Triton kernels: pip install -e '.[test]'")


def batch(rng, rows=6, length=12, items=30):
    lengths = rng.integers(0, length + 1, size=rows)
    lengths[:2] = (0, length)  # an empty row and a full one
    inputs, targets = np.zeros((2, rows, length), np.int32)
    for row, n in enumerate(lengths):
        inputs[row, length - n :] = rng.integers(1, items + 1, n)
        targets[row, length - n :] = rng.integers(1, items + 1, n)
    return inputs, targets


def loss_and_grads(backend: str, loss: str):
    config = to_config({"model": {"max_len": 12, "hidden": 20, "blocks": 2, "heads": 2, "dropout": 0.1}})
    model = build_model(config.model, 30, backend=backend, rngs=nnx.Rngs(0))
    inputs, targets = batch(np.random.default_rng(0))
    loss_fn = next_item_loss(loss)

    @nnx.jit
    def step(model):
        def f(model):
            hidden = model.encode(inputs, rngs=nnx.Rngs(dropout=jax.random.key(1)))
            return loss_fn(hidden, model.item_table(), targets, jax.random.key(2))

        return nnx.value_and_grad(f)(model)

    value, grads = step(model)
    return float(value), jax.tree.leaves(nnx.to_pure_dict(grads))


def test_interpret_matches_reference_in_a_training_step():
    loss_ref, grads_ref = loss_and_grads("reference", "ce")
    loss_tri, grads_tri = loss_and_grads("interpret", "ce")
    assert loss_tri == pytest.approx(loss_ref, rel=1e-5)
    for ref, tri in zip(grads_ref, grads_tri, strict=True):
        scale = max(float(np.abs(ref).max()), 1e-3)
        np.testing.assert_allclose(tri, ref, rtol=0, atol=1e-4 * scale)
