"""The mesh shards and pads exactly the variables marked as item rows (layers/item_rows.py), whatever their
names and shapes, on an abstract (data=1, model=4) mesh in this single-device process."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import AbstractMesh
from jax.sharding import PartitionSpec as P

from recattn_jax.config import ModelConfig
from recattn_jax.features.item_features import build_item_features
from recattn_jax.layers.item_rows import ITEM_ROWS, is_item_rows
from recattn_jax.models import MODELS, WITH_EVENTS, WITH_ITEM_FEATURES, WITH_USER_FEATURES, build_model
from recattn_jax.models.scoring import score_all
from recattn_jax.parallel.mesh import AXES, ParallelLayout

NUM_ITEMS = 29  # 30 item rows: 32 on a model axis of 4
LAYOUT = ParallelLayout(AbstractMesh((1, 4), AXES), NUM_ITEMS)


def by_path(state) -> dict:
    """{path: variable} of an nnx.State."""
    leaves = jax.tree_util.tree_leaves_with_path(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return {jax.tree_util.keystr(path): variable for path, variable in leaves}


class Tables(nnx.Module):
    def __init__(self):
        rows = NUM_ITEMS + 1
        self.items = nnx.Param(jnp.ones((rows, 3)))  # an item-row count and name, but not marked
        self.positions = nnx.Param(jnp.ones((rows + 4, 2)), **ITEM_ROWS)  # marked, whatever its name and rows
        self.counts = nnx.Variable(jnp.ones((rows,)), **ITEM_ROWS)  # marked, not trained


def test_only_marked_variables_are_padded_and_sharded():
    model = Tables()
    LAYOUT.pad_items(model)
    assert model.items.shape == (30, 3) and model.positions.shape == (36, 2) and model.counts.shape == (32,)
    assert np.all(model.positions[...][:34] == 1) and not np.any(model.positions[...][34:])
    assert np.all(model.counts[...][:30] == 1) and not np.any(model.counts[...][30:])

    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    shardings = LAYOUT.state_shardings(nnx.state((model, optimizer)))
    specs = {path: sharding.get_value().spec for path, sharding in by_path(shardings).items()}
    assert specs["[0]['items']"] == P() and specs["[0]['positions']"] == P("model")
    assert specs["[0]['counts']"] == P("model")
    for moment in ("mu", "nu"):  # Adam's moments follow their parameter's mark
        assert specs[f"[1]['opt_state'][0]['{moment}']['positions']"] == P("model")
        assert specs[f"[1]['opt_state'][0]['{moment}']['items']"] == P()
    assert specs["[1]['step']"] == P()


def test_marks_are_required_and_rows_must_divide():
    with pytest.raises(TypeError, match="pure dict"):
        LAYOUT.state_shardings(nnx.to_pure_dict(nnx.state(Tables())))  # no marks left to read
    with pytest.raises(ValueError, match="pad_items"):
        LAYOUT.state_shardings(nnx.state(Tables()))  # 34 marked rows on a model axis of 4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_the_marked_rows_changes_no_score(name):
    """Every item-row table a model has is marked (a fused table's feature rows with its ID rows, BERT4Rec's
    [mask] row with the items, LSTM's bias with its output table): padding them all leaves each item's
    score unchanged, and tables of users or positions, whose row counts here equal the items', unpadded."""
    features = build_item_features(["a b", "", "c"] * 9 + ["", ""], [["x"], [], ["y", "x"]] * 9 + [[], []])
    config = ModelConfig(name=name, max_len=NUM_ITEMS + 1, hidden=8, blocks=1, heads=2, dropout=0.0)
    model = build_model(
        config,
        NUM_ITEMS,
        backend="reference",
        rngs=nnx.Rngs(0),
        features=features if name in WITH_ITEM_FEATURES else None,
        user_features=np.eye(NUM_ITEMS + 1, 3, dtype=np.float32) if name in WITH_USER_FEATURES else None,
        num_event_types=2 if name in WITH_EVENTS else 0,
    )
    if name in WITH_USER_FEATURES:  # non-zero user vectors (W starts at zero)
        model.project.kernel[...] = jnp.ones_like(model.project.kernel[...])
    seq = jnp.array([[0, 0, 5, 1, 29], [3, 2, 1, 8, 9]])
    users = jnp.array([29, 1])
    events = jnp.array([[0, 0, 1, 2, 1], [2, 2, 1, 1, 2]]) if name in WITH_EVENTS else None
    scores = nnx.jit(score_all)  # one compile per table shape, not one per operation
    before = np.asarray(scores(model, seq, users, events))
    shapes = {path: variable.shape for path, variable in by_path(nnx.state(model)).items()}

    LAYOUT.pad_items(model)
    variables = by_path(nnx.state(model))
    assert any(map(is_item_rows, variables.values())), f"{name}: no item-row variable"
    for path, variable in variables.items():
        if is_item_rows(variable):
            assert variable.shape[0] % 4 == 0 and variable.shape[0] - shapes[path][0] < 4, path
        else:
            assert variable.shape == shapes[path], path
    after = np.asarray(scores(model, seq, users, events))
    assert after.shape[1] in (NUM_ITEMS + 1, 32)  # BERT4Rec's candidates are cut before its [mask] row
    np.testing.assert_allclose(after[:, : NUM_ITEMS + 1], before, rtol=1e-6, atol=1e-6)
