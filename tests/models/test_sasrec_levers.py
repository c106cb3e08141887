"""model.blocks, model.ffn, model.ffn_mult, model.attn_dropout, model.residual, model.tie_output, model.normalize,
model.positions, model.init: SASRec's block, scorer, position and initialisation variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recattn_jax.config import ModelConfig
from recattn_jax.config_checks import check_config
from recattn_jax.errors import ConfigError
from recattn_jax.layers.item_rows import is_item_rows
from recattn_jax.layers.swiglu import SwiGLUFeedForward
from recattn_jax.layers.transformer import TransformerBlock, TransformerEncoder
from recattn_jax.losses import full_cross_entropy
from recattn_jax.models import build_model, item_embedding
from recattn_jax.models.sasrec import SASRec
from recattn_jax.train.loop import train_and_evaluate

ITEMS = 30
# one compile per function and shape: run eagerly, every operation of the model would compile on its own
encode = nnx.jit(lambda model, seq: model.encode(seq))
user_representation = nnx.jit(lambda model, seq: model.user_representation(seq))


def config(**kw):
    return ModelConfig(**{"max_len": 8, "hidden": 16, "blocks": 2, "heads": 2, "dropout": 0.0, **kw})


def param_shapes(module):
    return {path: value.shape for path, value in nnx.to_flat_state(nnx.state(module))}


def sasrec(**kw):
    return build_model(config(**kw), num_items=ITEMS, backend="reference", rngs=nnx.Rngs(0))


def sequences(seed=0):
    seq = np.random.default_rng(seed).integers(1, ITEMS + 1, (3, 8))
    seq[0, :3] = 0  # left padding
    return jnp.asarray(seq, jnp.int32)


def test_defaults_are_the_tied_relu_model_of_before():
    """The same parameters, drawn in the same order, as SASRec composed without the new parts."""
    c, rngs = config(), nnx.Rngs(0)
    before = SASRec(
        item_embedding(c, ITEMS, backend="reference", rngs=rngs),
        TransformerEncoder(c.hidden, c.heads, c.blocks, c.dropout, c.layer_norm, "reference", rngs=rngs),
        c.dropout,
    )
    now = sasrec()
    assert now.output is None and not now.normalize
    flat_before, flat_now = nnx.to_flat_state(nnx.state(before)), nnx.to_flat_state(nnx.state(now))
    assert [p for p, _ in flat_before] == [p for p, _ in flat_now]
    for (_, a), (_, b) in zip(flat_before, flat_now, strict=True):
        np.testing.assert_array_equal(a[...], b[...])
    np.testing.assert_array_equal(now.item_table(), now.embedding.table)


@pytest.mark.parametrize("ffn_mult", [1, 4])
def test_swiglu_feed_forward_is_the_gated_formula(ffn_mult):
    model = sasrec(ffn="swiglu", ffn_mult=ffn_mult)
    ffn = model.encoder.blocks[0].ffn
    assert isinstance(ffn, SwiGLUFeedForward)
    assert ffn.gate.kernel.shape == ffn.up.kernel.shape == (16, 16 * ffn_mult)
    assert ffn.down.kernel.shape == (16 * ffn_mult, 16)
    x = jax.random.normal(jax.random.key(1), (2, 5, 16))

    def linear(layer, v):
        return v @ layer.kernel[...] + layer.bias[...]

    expected = linear(ffn.down, jax.nn.silu(linear(ffn.gate, x)) * linear(ffn.up, x))
    np.testing.assert_allclose(ffn(x), expected, rtol=1e-5, atol=1e-6)
    seq = sequences()
    base = encode(model, seq)
    later = encode(model, seq.at[:, 5:].set(1))  # causal: later items leave earlier positions alone
    np.testing.assert_allclose(later[:, :5], base[:, :5], atol=1e-5)
    assert not np.allclose(base, encode(sasrec(), seq), atol=1e-3)


def test_ffn_mult_widens_the_relu_feed_forward():
    """model.ffn_mult=4: every block's inner layer is 4 x hidden wide, the rest of the model keeps its shapes, and
    the wider blocks compute another (still causal) function."""
    narrow, wide = sasrec(), sasrec(ffn_mult=4)
    for block_ in wide.encoder.blocks:
        assert block_.ffn.inner.kernel.shape == (16, 64) and block_.ffn.outer.kernel.shape == (64, 16)
    shapes = param_shapes(narrow)
    for path, shape in param_shapes(wide).items():
        if "ffn" not in path:
            assert shape == shapes[path], path
    seq = sequences()
    base = encode(wide, seq)
    assert not np.allclose(base, encode(narrow, seq), atol=1e-3)
    later = encode(wide, seq.at[:, 5:].set(1))
    np.testing.assert_allclose(later[:, :5], base[:, :5], atol=1e-5)


def test_blocks_sets_the_depth():
    """model.blocks=3: three blocks shaped like the two of model.blocks=2, everything outside the stack
    unchanged, another (still causal) function."""
    two, three = sasrec(), sasrec(blocks=3)
    assert (len(two.encoder.blocks), len(three.encoder.blocks)) == (2, 3)
    assert all(param_shapes(block_) == param_shapes(two.encoder.blocks[0]) for block_ in three.encoder.blocks)
    outside = [{p: v for p, v in param_shapes(m).items() if "blocks" not in p} for m in (two, three)]
    assert outside[0] == outside[1] and outside[0]
    seq = sequences()
    base, shallow = encode(three, seq), encode(two, seq)
    assert base.shape == shallow.shape and not np.allclose(base, shallow, atol=1e-3)
    later = encode(three, seq.at[:, 5:].set(1))
    np.testing.assert_allclose(later[:, :5], base[:, :5], atol=1e-5)


def test_attention_dropout_on_the_weights_instead_of_the_output():
    """model.attn_dropout=weights moves model.dropout from the attention branch's output to its softmax weights:
    the same parameters, the same evaluation, another training function, one mask per dropout key."""

    def model(**kw):
        c = config(dropout=0.3, **kw)
        return build_model(c, num_items=ITEMS, backend="reference", rngs=nnx.Rngs(0))

    on_output, on_weights = model(), model(attn_dropout="weights")
    for block_ in on_output.encoder.blocks:
        assert block_.attention.dropout == 0.0 and block_.attn_out_dropout.rate == 0.3
    for block_ in on_weights.encoder.blocks:
        assert block_.attention.dropout == 0.3 and block_.attn_out_dropout.rate == 0.0
        assert block_.dropout.rate == 0.3  # the feed-forward branch keeps its dropout
    for (path, a), (_, b) in zip(
        nnx.to_flat_state(nnx.state(on_output)), nnx.to_flat_state(nnx.state(on_weights)), strict=True
    ):
        np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))
    seq = sequences()
    np.testing.assert_array_equal(encode(on_weights, seq), encode(on_output, seq))
    train = nnx.jit(lambda model, seq, key: model.encode(seq, rngs=nnx.Rngs(dropout=key)))
    key0, key1 = jax.random.key(0), jax.random.key(1)
    first = train(on_weights, seq, key0)
    assert np.all(np.isfinite(first))
    assert not np.allclose(first, encode(on_weights, seq), atol=1e-3)
    assert not np.allclose(first, train(on_output, seq, key0), atol=1e-3)
    np.testing.assert_array_equal(train(on_weights, seq, key0), first)
    assert not np.allclose(train(on_weights, seq, key1), first, atol=1e-3)


def block(layer_norm, residual):
    return TransformerBlock(16, 2, 0.0, layer_norm, "reference", rngs=nnx.Rngs(4), residual=residual)


def set_gates(gated, bias):
    """Both gates constant: sigmoid(bias) whatever their input."""
    for gate in (gated.attn_gate, gated.ffn_gate):
        gate.kernel[...] = jnp.zeros_like(gate.kernel[...])
        gate.bias[...] = jnp.full_like(gate.bias[...], bias)


@pytest.mark.parametrize("layer_norm", ["sasrec", "pre"])
def test_gated_residual_opens_and_closes_each_branch(layer_norm):
    """model.residual=gated: a gate fully open is the plain block (the same parameters, drawn first); both gates
    closed leave the residual stream alone (pre-LN: the block is the identity; SASRec's placement: LN(LN(x))); in
    between each branch is scaled per feature by sigmoid of a linear map of the stream it joins (LiGR with pre-LN)."""
    x = jax.random.normal(jax.random.key(5), (2, 6, 16))
    bounds = jnp.zeros(2, jnp.int32), jnp.full(2, 6, jnp.int32)
    plain, gated = block(layer_norm, "plain"), block(layer_norm, "gated")
    run = lambda b: b(x, *bounds, causal=True)  # noqa: E731
    set_gates(gated, 30.0)
    np.testing.assert_allclose(run(gated), run(plain), atol=1e-5)
    set_gates(gated, -30.0)
    closed = x if layer_norm == "pre" else gated.ffn_norm(gated.attn_norm(x))
    np.testing.assert_allclose(run(gated), closed, atol=1e-5)
    set_gates(gated, 0.0)  # half of each branch: differs from both ends
    half = run(gated)
    assert not np.allclose(half, run(plain), atol=1e-3) and not np.allclose(half, closed, atol=1e-3)
    gated = block(layer_norm, "gated")  # drawn gates: each reads the residual stream its branch joins
    later = gated(x.at[:, 4:].set(1.0), *bounds, causal=True)
    np.testing.assert_allclose(later[:, :4], run(gated)[:, :4], atol=1e-5)  # still causal
    h = gated.attn_norm(x)
    a = gated.attention(h, x if layer_norm == "sasrec" else h, kv_start=bounds[0], kv_end=bounds[1], causal=True)
    if layer_norm == "pre":  # LiGR: x += σ(x W1 + b1) ⊙ Attn(LN(x)); x += σ(x W2 + b2) ⊙ FFN(LN(x))
        mid = x + jax.nn.sigmoid(gated.attn_gate(x)) * a
        f = gated.ffn(gated.ffn_norm(mid))
    else:  # SASRec: the stream of the attention branch is the normalised queries
        mid = gated.ffn_norm(h + jax.nn.sigmoid(gated.attn_gate(h)) * a)
        f = gated.ffn(mid)
    np.testing.assert_allclose(run(gated), mid + jax.nn.sigmoid(gated.ffn_gate(mid)) * f, atol=1e-5)


def test_gated_residual_gates_train():
    model = sasrec(residual="gated")
    seq = sequences()
    targets = jnp.roll(seq, -1, axis=1).at[:, -1].set(1)

    def loss(model):
        return full_cross_entropy(model.encode(seq), model.item_table(), targets, None)

    grads = nnx.jit(nnx.grad(loss))(model)
    for i in range(2):
        for gate in ("attn_gate", "ffn_gate"):
            assert float(jnp.abs(grads["encoder"]["blocks"][i][gate]["kernel"][...]).sum()) > 0, (i, gate)


def test_untied_output_table_is_its_own_item_rows():
    model = sasrec(tie_output=False)
    table = model.item_table()
    assert table.shape == (ITEMS + 1, 16) and not np.allclose(table, model.embedding.table)
    seq = sequences()
    targets = jnp.roll(seq, -1, axis=1).at[:, -1].set(1)

    def loss(model):
        return full_cross_entropy(model.encode(seq), model.item_table(), targets, None)

    grads = nnx.jit(nnx.grad(loss))(model)
    assert float(jnp.abs(grads["output"]["ids"]["embedding"][...]).sum()) > 0  # the scorer trains the output table
    assert float(jnp.abs(grads["embedding"]["items"]["embedding"][...]).sum()) > 0  # and the inputs their own
    variables = jax.tree_util.tree_leaves_with_path(nnx.state(model), is_leaf=lambda x: isinstance(x, nnx.Variable))
    item_rows = [jax.tree_util.keystr(path) for path, variable in variables if is_item_rows(variable)]
    assert any("output" in p for p in item_rows) and any("items" in p for p in item_rows)  # the mesh shards both


def test_normalized_states_and_items_give_cosines():
    model = sasrec(normalize=True, tie_output=False)
    seq = sequences()
    hidden = encode(model, seq)
    valid = np.asarray(seq) != 0
    np.testing.assert_allclose(np.linalg.norm(hidden, axis=-1)[valid], 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(model.item_table(), axis=-1), 1.0, rtol=1e-5)
    scores = user_representation(model, seq) @ model.item_table().T
    assert float(jnp.abs(scores).max()) <= 1.0 + 1e-5
    raw = sasrec(tie_output=False)  # the same parameters: cosines are the raw scores over the norms
    user = user_representation(raw, seq)
    cos = user @ raw.item_table().T
    cos = cos / jnp.linalg.norm(user, axis=-1, keepdims=True)
    cos = cos / jnp.linalg.norm(raw.item_table(), axis=-1)
    np.testing.assert_allclose(scores, cos, atol=1e-5)
    state = nnx.state(model)  # a zero row (padding, mesh padding) stays zero with a finite gradient
    state["output"]["ids"]["embedding"][...] = state["output"]["ids"]["embedding"][...].at[0].set(0.0)
    nnx.update(model, state)
    assert float(jnp.abs(model.item_table()[0]).max()) == 0
    grads = nnx.grad(lambda m: jnp.sum(m.item_table() ** 3))(model)
    assert np.all(np.isfinite(grads["output"]["ids"]["embedding"][...]))


def test_positions_from_oldest_count_from_each_rows_first_item():
    """from_oldest: a row's items get ids 0..n-1 whatever its padding, so two rows that begin with the same
    items encode those items alike (causal), which from_newest (ids from the window's end) does not."""
    short = jnp.asarray([[0, 0, 0, 0, 4, 7, 9, 2]], jnp.int32)  # left padding, then 4 items
    full = jnp.asarray([[4, 7, 9, 2, 5, 1, 3, 8]], jnp.int32)  # the same first 4 items, then 4 more
    oldest, newest = sasrec(positions="from_oldest"), sasrec()
    np.testing.assert_array_equal(oldest.embedding.position_ids(short), [[0, 0, 0, 0, 0, 1, 2, 3]])
    np.testing.assert_array_equal(oldest.embedding.position_ids(full), [np.arange(8)])
    np.testing.assert_array_equal(newest.embedding.position_ids(short), [np.arange(8)])
    a, b = encode(oldest, short)[0, 4:], encode(oldest, full)[0, :4]
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(encode(newest, short)[0, 4:], encode(newest, full)[0, :4], atol=1e-3)
    # a history cut to fewer slots (eval length groups) keeps every item's id, so its states
    np.testing.assert_allclose(encode(oldest, short[:, 3:]), encode(oldest, short)[:, 3:], atol=1e-5)
    # the same parameters as from_newest: the lever changes which row of the position table a slot reads
    flat_a, flat_b = nnx.to_flat_state(nnx.state(oldest)), nnx.to_flat_state(nnx.state(newest))
    for (_, x), (_, y) in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(x[...], y[...])


def init_model(init):
    """A 64-wide SASRec over 500 items with `model.init=init`, drawn from the same seed whatever the init."""
    return build_model(
        ModelConfig(max_len=50, hidden=64, blocks=2, heads=1, init=init), 500, backend="reference", rngs=nnx.Rngs(3)
    )


def test_normal_init_redraws_embeddings_and_residual_branch_kernels_only():
    """model.init=normal: embeddings, feed-forward and attention-output kernels ~ N(0, 0.02^2); the query, key and
    value projections, biases and layer norms are what the default draws (the same rngs, drawn first)."""
    default, normal = (nnx.to_flat_state(nnx.state(init_model(init))) for init in ("xavier", "normal"))
    redrawn = []
    for (path, a), (_, b) in zip(default, normal, strict=True):
        name = "/".join(map(str, path))
        if any(k in name for k in ("query/", "key/", "value/")) or not name.endswith(("kernel", "embedding")):
            np.testing.assert_array_equal(a[...], b[...], err_msg=name)
        else:
            redrawn.append(name)
            assert abs(float(np.std(b[...])) / 0.02 - 1) < 0.15, name
            assert abs(float(np.mean(b[...]))) < 0.004, name
            assert not np.allclose(a[...], b[...]), name
    assert sorted(redrawn) == sorted(
        ["embedding/items/embedding", "embedding/positions/embedding"]
        + [f"encoder/blocks/{i}/{k}/kernel" for i in range(2) for k in ("attention/out", "ffn/inner", "ffn/outer")]
    )


def test_sasrec_plus_init_is_normal_with_torch_attention_projections():
    """model.init=sasrec_plus: what normal draws, then q, k, v kernels as torch.nn.MultiheadAttention's packed
    [3D, D] in-projection (Xavier-uniform): the bound and spread of torch's own draw."""
    torch = pytest.importorskip("torch", reason="compared with torch's own draw (pip install -e '.[test]')")
    normal, plus = (nnx.to_flat_state(nnx.state(init_model(init))) for init in ("normal", "sasrec_plus"))
    theirs = torch.nn.MultiheadAttention(64, 1).in_proj_weight.detach().numpy()  # [3D, D]
    bound = np.sqrt(6.0 / (64 + 3 * 64))
    redrawn = []
    for (path, a), (_, b) in zip(normal, plus, strict=True):
        name = "/".join(map(str, path))
        if not any(k in name for k in ("query/kernel", "key/kernel", "value/kernel")):
            np.testing.assert_array_equal(a[...], b[...], err_msg=name)
            continue
        redrawn.append(name)
        assert np.abs(b[...]).max() <= bound and np.abs(b[...]).max() > 0.95 * bound, name
        assert abs(float(np.std(b[...])) / float(np.std(theirs)) - 1) < 0.1, name
        assert abs(float(np.std(a[...])) / float(np.std(theirs)) - 1) > 0.2, name  # the default's spread is not
    assert len(redrawn) == 6


# (lever, a value no builder knows, a valid value other than the default)
LEVERS = [
    ("ffn", "gelu", "swiglu"),
    ("ffn_mult", 0, 4),
    ("attn_dropout", "both", "weights"),
    ("residual", "highway", "gated"),
    ("positions", "from_the_middle", "from_oldest"),
    ("init", "uniform", "normal"),
]


@pytest.mark.parametrize("lever, unknown, other", LEVERS, ids=[lever for lever, _, _ in LEVERS])
def test_refusals(tiny_config, lever, unknown, other):
    """An unknown value is refused by the builder and by the config check; a valid one on another model is refused
    as sasrec's."""
    with pytest.raises(ConfigError, match=f"model.{lever}"):
        sasrec(**{lever: unknown})
    setattr(tiny_config.model, lever, unknown)
    with pytest.raises(ConfigError, match=f"model.{lever}"):
        check_config(tiny_config)
    setattr(tiny_config.model, lever, other)
    tiny_config.model.name = "bert4rec"
    with pytest.raises(ConfigError, match="sasrec's"):
        check_config(tiny_config)


@pytest.mark.slow  # tests/train/test_levers_run.py runs every lever at once in the fast tier
def test_a_run_with_every_model_lever(tiny_config, tmp_path):
    m = tiny_config.model
    m.ffn, m.tie_output, m.normalize, m.positions, m.init = "swiglu", False, True, "from_oldest", "normal"
    m.residual, m.ffn_mult, m.attn_dropout = "gated", 2, "weights"
    tiny_config.loss.temperature = 0.1
    results = train_and_evaluate(tiny_config, tmp_path)
    assert results["steps"] == 2 and np.isfinite(results["train_loss"])
