"""Multi-device checks on 8 forced CPU devices, one per subprocess: `python -m tests.parallel.multidevice_checks NAME`.

XLA_FLAGS must be set before jax is imported, so these run outside the pytest process
(see test_multidevice.py). Each check raises AssertionError on failure.
"""

import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import dataclasses
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import kernels
from recattn_jax.config import MeshConfig, to_config
from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import full_ranks
from recattn_jax.losses import full_cross_entropy, unseen_cross_entropy
from recattn_jax.parallel.mesh import ParallelLayout, batch_placement, make_mesh
from recattn_jax.parallel.sharded_ce import sharded_cross_entropy
from recattn_jax.parallel.topk import chunked_ranks, chunked_topk, full_topk, sharded_ranks, sharded_topk
from recattn_jax.train.epoch import packs_positions, run_epoch
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.step import build_training
from tests.tiny_configs import TINY

NUM_ITEMS = 50  # 51 rows: not a multiple of the model axis, so mesh padding is exercised


def layout(data: int, model: int, num_items: int = NUM_ITEMS) -> ParallelLayout:
    return ParallelLayout(make_mesh(MeshConfig(data, model)), num_items)


def pad_rows(table, rows):
    return jnp.concatenate([table, jnp.zeros((rows - table.shape[0], *table.shape[1:]), table.dtype)])


def check_sharded_ce():
    """Loss and gradients from item-sharded logits equal the unsharded CE; no all-gather of the table."""
    lay = layout(4, 2)
    k = jax.random.split(jax.random.key(0), 3)
    hidden = jax.random.normal(k[0], (8, 5, 16))
    table = jax.random.normal(k[1], (NUM_ITEMS + 1, 16))
    targets = jax.random.randint(k[2], (8, 5), 0, NUM_ITEMS + 1).at[0].set(0)
    sharded_loss = sharded_cross_entropy(lay)

    def ref(h, t):
        return full_cross_entropy(h, t, targets, None)

    def sharded(h, t):
        return sharded_loss(h, t, targets, None)

    h = jax.device_put(hidden, lay.sharding("data"))
    t = jax.device_put(pad_rows(table, lay.rows), lay.sharding("model"))
    np.testing.assert_allclose(jax.jit(sharded)(h, t), ref(hidden, table), rtol=1e-6)
    g_ref = jax.grad(ref, argnums=(0, 1))(hidden, table)
    g = jax.jit(jax.grad(sharded, argnums=(0, 1)))(h, t)
    np.testing.assert_allclose(g[0], g_ref[0], atol=1e-6)
    np.testing.assert_allclose(g[1][: NUM_ITEMS + 1], g_ref[1], atol=1e-6)
    assert not np.any(np.asarray(g[1][NUM_ITEMS + 1 :])), "mesh-pad rows got a gradient"
    hlo = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1))).lower(h, t).compile().as_text()
    assert "all-gather" not in hlo, "the item table was gathered"
    # loss.temperature: the CE of logits / T, as on one device
    cool = sharded_cross_entropy(lay, temperature=0.3)
    np.testing.assert_allclose(
        jax.jit(lambda h, t: cool(h, t, targets, None))(h, t),
        full_cross_entropy(hidden, table, targets, None, temperature=0.3),
        rtol=1e-6,
    )
    g_ref = jax.grad(lambda h: full_cross_entropy(h, table, targets, None, temperature=0.3))(hidden)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda h: cool(h, t, targets, None)))(h), g_ref, atol=1e-6)
    # the Triton kernels (through the interpreter) inside shard_map, at temperature 0.3: outputs and gradients
    # typed as varying over the mesh axes, so the custom VJP passes shard_map's check and the psums count each
    # shard once
    _compare_sharded(lay, NUM_ITEMS, backend="interpret", temperature=0.3)
    _check_unsummed_input_refused(lay, hidden, table)
    # loss.exclude_seen: each position's softmax without its row's earlier items (some repeated, some the
    # target itself), every shard's rows included, as unseen_cross_entropy on one device
    seen = jax.random.randint(jax.random.key(7), (8, 5), 0, NUM_ITEMS + 1)
    seen = seen.at[1, 3].set(seen[1, 1]).at[2, 2].set(targets[2, 4]).at[3].set(0)
    unseen = sharded_cross_entropy(lay, temperature=0.3, exclude_seen=True)

    def unseen_ref(h, t):
        return unseen_cross_entropy(h, t, targets, seen, 0.3)

    def unseen_sharded(h, t):
        return unseen(h, t, targets, None, seen=jax.device_put(seen, lay.sharding("data")))

    want = unseen_ref(hidden, table)
    assert abs(float(want) - float(full_cross_entropy(hidden, table, targets, None, temperature=0.3))) > 1e-3
    np.testing.assert_allclose(jax.jit(unseen_sharded)(h, t), want, rtol=1e-6)
    g_ref = jax.grad(unseen_ref, argnums=(0, 1))(hidden, table)
    g = jax.jit(jax.grad(unseen_sharded, argnums=(0, 1)))(h, t)
    np.testing.assert_allclose(g[0], g_ref[0], atol=1e-6)
    np.testing.assert_allclose(g[1][: NUM_ITEMS + 1], g_ref[1], atol=1e-6)
    assert not np.any(np.asarray(g[1][NUM_ITEMS + 1 :])), "mesh-pad rows got a gradient"
    assert np.all(np.isfinite(np.asarray(g[0]))) and np.all(np.isfinite(np.asarray(g[1])))
    # two item chunks of 128 per shard (300 items: 151 rows on each of 2 shards: the op's scan, not its one
    # matmul), and a shard of mesh padding only (5 items: 8 rows on 4 shards, the last shard's rows are ids 6, 7);
    # the full CE through the XLA reference and the Triton kernels (interpreted), and the exclude_seen CE
    for data, model, items in ((4, 2, 300), (2, 4, 5)):
        for options in ({"backend": "reference"}, {"backend": "interpret"}, {"exclude_seen": True}):
            _compare_sharded(layout(data, model, items), items, **options)


def _check_unsummed_input_refused(lay, hidden, table):
    """Inside shard_map, hidden typed as the same on every `model` shard (no cast, so nothing would sum its
    gradient over the shards) is refused by both backends' custom VJP, loudly, not answered with a partial sum."""
    rows = lay.rows // 2  # one model shard's rows

    def per_shard(h, t):
        t = jax.lax.pcast(t, "data", to="varying")  # the table cast as sharded_ce does; hidden left as it is
        h = h.reshape(-1, h.shape[-1])
        none = jnp.zeros(h.shape[:1], jnp.int32)  # no target logit: the log-sum-exp alone needs the sum
        lse, _ = kernels.linear_lse_and_target_logit(
            h, t, none, has_target=none != 0, candidates=(0, rows), backend=backend
        )
        return jax.lax.psum(jnp.sum(lse), ("data", "model"))

    f = jax.shard_map(per_shard, mesh=lay.mesh, in_specs=(P("data", None, None), P("model", None)), out_specs=P())
    h = jax.device_put(hidden, lay.sharding("data"))
    t = jax.device_put(pad_rows(table, lay.rows), lay.sharding("model"))
    for backend in ("reference", "interpret"):
        try:
            jax.jit(jax.grad(f))(h, t)
        except (TypeError, ValueError) as err:
            assert "bwd rule" in str(err) or "type" in str(err), err
        else:
            raise AssertionError(f"backend {backend}: an unsummed hidden inside shard_map was not refused")


def _compare_sharded(lay, items, rows=4, length=6, dim=8, **options):
    """The mesh's CE (`options`: sharded_cross_entropy's backend, temperature or exclude_seen) equals the one-device CE
    (full_cross_entropy, or unseen_cross_entropy with exclude_seen): values, gradients, finite."""
    k = jax.random.split(jax.random.key(items), 4)
    hidden, table = jax.random.normal(k[0], (rows, length, dim)), jax.random.normal(k[1], (items + 1, dim))
    targets = jax.random.randint(k[2], (rows, length), 1, items + 1).at[0, :2].set(0)
    seen = jax.random.randint(k[3], (rows, length), 0, items + 1).at[1, 4].set(targets[1, 5])
    loss = sharded_cross_entropy(lay, **options)
    h, t = (
        jax.device_put(hidden, lay.sharding("data")),
        jax.device_put(pad_rows(table, lay.rows), lay.sharding("model")),
    )
    if options.get("exclude_seen"):
        on_mesh = jax.device_put(seen, lay.sharding("data"))
        value, grads = jax.jit(jax.value_and_grad(lambda h, t: loss(h, t, targets, None, seen=on_mesh), (0, 1)))(h, t)
        want, want_grads = jax.value_and_grad(
            lambda h, t: unseen_cross_entropy(h, t, targets, seen, options.get("temperature", 1.0)), (0, 1)
        )(hidden, table)
    else:
        value, grads = jax.jit(jax.value_and_grad(lambda h, t: loss(h, t, targets, None), (0, 1)))(h, t)
        want, want_grads = jax.value_and_grad(
            lambda h, t: full_cross_entropy(h, t, targets, None, temperature=options.get("temperature", 1.0)), (0, 1)
        )(hidden, table)
    where = f"{items} items, {options}"
    np.testing.assert_allclose(value, want, rtol=1e-6, err_msg=where)
    np.testing.assert_allclose(grads[0], want_grads[0], rtol=1e-5, atol=1e-6, err_msg=where)
    np.testing.assert_allclose(grads[1][: items + 1], want_grads[1], rtol=1e-5, atol=1e-6, err_msg=where)
    assert not np.any(np.asarray(grads[1][items + 1 :])), f"mesh-pad rows got a gradient: {where}"
    assert np.all(np.isfinite(np.asarray(grads[0]))) and np.all(np.isfinite(np.asarray(grads[1]))), where


def _scoring_inputs(users=8, dim=16, history=7):
    k = jax.random.split(jax.random.key(1), 4)
    user = jax.random.normal(k[0], (users, dim))
    table = jax.random.normal(k[1], (NUM_ITEMS + 1, dim))
    table = table.at[9].set(table[8])  # a tie: the lower id must win
    seen = jax.random.randint(k[2], (users, history), 0, NUM_ITEMS + 1).at[:, -2:].set(0)
    targets = jax.random.randint(k[3], (users,), 1, NUM_ITEMS + 1)
    return user, table, seen, targets


def check_sharded_topk():
    """Per-shard chunked top-K merged across shards equals top-K over the whole score matrix; ranks too."""
    user, table, seen, targets = _scoring_inputs()
    scores = user @ table.T
    want_scores, want_ids = full_topk(scores, seen, 10, NUM_ITEMS)
    want_ranks = full_ranks(scores, targets, seen)
    for chunk in (None, 4, 7, 64):  # 7 does not divide a shard's rows: the last chunk overlaps
        got = chunked_topk(user, table, seen, 10, chunk=chunk or 51, num_items=NUM_ITEMS)
        np.testing.assert_array_equal(got[1], want_ids)
        np.testing.assert_allclose(got[0], want_scores, rtol=1e-6)
        ranks = chunked_ranks(user, table, targets, seen, chunk=chunk or 51, num_items=NUM_ITEMS)
        np.testing.assert_array_equal(ranks, want_ranks)
        if chunk not in (None, 7):
            continue  # the sharded variants: whole shards and a ragged chunk are enough (compile time)
        for data, model in ((4, 2), (1, 8)):
            lay = layout(data, model)
            u = jax.device_put(user, lay.sharding("data"))
            t = jax.device_put(pad_rows(table, lay.rows), lay.sharding("model"))
            s = jax.device_put(seen, lay.sharding("data"))
            got = jax.jit(sharded_topk(lay, 10, chunk))(u, t, s)
            np.testing.assert_array_equal(got[1], want_ids, err_msg=f"{data}x{model} chunk {chunk}")
            np.testing.assert_allclose(got[0], want_scores, rtol=1e-6)
            tg = jax.device_put(targets, lay.sharding("data"))
            np.testing.assert_array_equal(jax.jit(sharded_ranks(lay, chunk))(u, t, tg, s), want_ranks)
    # a collapsed table (item i has row i mod 3): equal rows must rank ahead of the target on every shard
    # layout, as in the whole score matrix, whichever product scores the target
    table = table[jnp.arange(NUM_ITEMS + 1) % 3 + 1]
    want_ranks = full_ranks(user @ table.T, targets, seen)
    for chunk in (None, 7):
        lay = layout(4, 2)
        u, s, tg = (jax.device_put(x, lay.sharding("data")) for x in (user, seen, targets))
        t = jax.device_put(pad_rows(table, lay.rows), lay.sharding("model"))
        got = jax.jit(sharded_ranks(lay, chunk))(u, t, tg, s)
        np.testing.assert_array_equal(got, want_ranks, err_msg=f"collapsed table, chunk {chunk}")


def tiny(**mesh):
    config = to_config(TINY)
    config.kernel.backend = "reference"
    config.mesh = MeshConfig(**mesh)
    return config


def check_sharded_train_step():
    """Two steps on a 4 x 2 mesh equal two single-device steps (loss, parameters, the weight average of
    train.ema_decay); no float all-gather."""
    single, sharded = tiny(data=1, model=1), tiny(data=4, model=2)
    single.train.ema_decay = sharded.train.ema_decay = 0.9
    split = load_split(single.data)
    arrays = next_item_arrays(split.train_sequences, single.model.max_len)
    states, losses = [], []
    for config in (single, sharded):
        lay = ParallelLayout.from_config(config, split.data.num_items)
        _, state, step, _ = build_training(config, split.data.num_items, layout=lay)
        if config is sharded:  # neither the CE nor the embedding lookup gathers the item table
            _, place = batch_placement(lay)
            batch = place({"inputs": arrays.inputs[:16], "targets": arrays.targets[:16]})
            hlo = step.lower(state, batch, jax.random.key(0)).compile().as_text()
            gathered = [line.split("=")[1].split()[0] for line in hlo.splitlines() if " all-gather(" in line]
            # only dropout's random bits (u32: the sequential Threefry is generated whole, then sliced) are
            # gathered; a float all-gather would be the item table or activations
            assert all(kind.startswith("u32[") for kind in gathered), gathered
        state, loss = _epoch(config, step, state, arrays, lay, max_steps=2)
        states.append(state)
        losses.append(np.asarray(jax.device_get(loss)))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    table = states[1][0]["embedding"]["items"]["embedding"][...]
    assert table.sharding.spec[0] == "model" and table.shape[0] == 52, table.sharding
    averaged = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(states[1])
        if "['ema']['embedding']['items']" in jax.tree_util.keystr(path)
    ]
    assert len(averaged) == 1 and averaged[0].sharding.spec[0] == "model", averaged  # sharded like the table
    flat_single = jax.tree_util.tree_leaves_with_path(states[0])
    flat_sharded = dict(jax.tree_util.tree_leaves_with_path(states[1]))
    for path, leaf in flat_single:
        if "['key']['bias']" in jax.tree_util.keystr(path):
            continue  # its gradient is 0 in exact arithmetic (softmax is shift-invariant): Adam scales noise to lr
        other = np.asarray(flat_sharded[path])[: np.shape(leaf)[0]] if np.ndim(leaf) else flat_sharded[path]
        np.testing.assert_allclose(other, leaf, atol=2e-6, err_msg=jax.tree_util.keystr(path))


def _epoch(config, step, state, arrays, lay, max_steps):
    """The first `max_steps` steps of epoch 1, with the batches placed and packed as train_and_evaluate does."""
    pack = packs_positions(config.loss.name, lay)
    return run_epoch(step, state, arrays, config.train, config.seed, 1, max_steps, layout=lay, pack=pack)


def _one_step(config, arrays, num_items, user_features=None, num_event_types=0, features=None):
    lay = ParallelLayout.from_config(config, num_items)
    build = {"features": features, "user_features": user_features, "num_event_types": num_event_types, "layout": lay}
    _, state, step, _ = build_training(config, num_items, **build)
    state, loss = _epoch(config, step, state, arrays, lay, max_steps=1)
    return state, float(jax.device_get(loss[0]))


def _assert_same_state(single, sharded, name):
    """Every leaf equal; item-row leaves compared on rows 0..I (the mesh-pad rows must stay zero)."""
    flat_sharded = dict(jax.tree_util.tree_leaves_with_path(sharded))
    for path, leaf in jax.tree_util.tree_leaves_with_path(single):
        where = f"{name} {jax.tree_util.keystr(path)}"
        if "['key']['bias']" in where:
            continue  # its gradient is 0 in exact arithmetic (softmax is shift-invariant): Adam scales noise to lr
        other = flat_sharded[path]
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # a recurrent cell's RNG key
            leaf, other = jax.random.key_data(leaf), jax.random.key_data(other)
        other = np.asarray(other)
        if np.ndim(leaf) and other.shape[0] > np.shape(leaf)[0]:
            assert not np.any(other[np.shape(leaf)[0] :]), f"{where}: mesh-pad rows changed"
            other = other[: np.shape(leaf)[0]]
        np.testing.assert_allclose(other, leaf, atol=2e-6, err_msg=where)


def check_own_loss_train_step():
    """Models with their own training loss (and event-type inputs), and the recurrent models (LSTM's item-row
    bias, fused item tables): one step on a 4 x 2 mesh equals the single-device step."""
    from recattn_jax.features.item_features import build_item_features

    split = load_split(tiny(data=1, model=1).data)
    num_items = split.data.num_items
    arrays = next_item_arrays(split.train_sequences, TINY["model"]["max_len"])
    events = [(s % 3 + 1).astype(np.int32) for s in split.train_sequences]  # 3 event types, one per item
    event_arrays = next_item_arrays(split.train_sequences, TINY["model"]["max_len"], events)
    user_features = np.random.default_rng(0).normal(size=(split.data.num_users, 3)).astype(np.float32)
    texts = [("a b", "", "c d")[i % 3] for i in range(num_items)]
    item_features = build_item_features(texts, [[("x", "y")[i % 2]] if i % 5 else [] for i in range(num_items)])
    names = ("bert4rec", "bpr_mf", "din", "pop", "sasrec+user_features", "sasrec+events", "bert4rec+events")
    for name in (*names, "gru4rec", "lstm+item_features"):
        results = []
        for mesh in ({"data": 1, "model": 1}, {"data": 4, "model": 2}):
            config = tiny(**mesh)
            config.model.name = name.split("+")[0]
            config.model.mask_prob = 0.5  # bert4rec: enough masked positions in one batch
            features = user_features if "user_features" in name else None
            fused = item_features if "item_features" in name else None
            if "events" in name:
                results.append(_one_step(config, event_arrays, num_items, features, num_event_types=3))
            else:
                results.append(_one_step(config, arrays, num_items, features, features=fused))
        (single, single_loss), (sharded, sharded_loss) = results
        np.testing.assert_allclose(sharded_loss, single_loss, rtol=1e-5, err_msg=name)
        _assert_same_state(single, sharded, name)


def check_sharded_training_results():
    """train_and_evaluate on a 4 x 2 mesh gives the single-device train loss and metrics (sasrec, sasrec with
    loss.exclude_seen and loss.temperature, and bert4rec, whose item table is cut from one with a [mask] row and
    padded for the sharded scoring)."""
    for model, levers in (("sasrec", False), ("sasrec", True), ("bert4rec", False)):
        single, mesh = tiny(data=1, model=1), tiny(data=4, model=2)
        single.model.name = mesh.model.name = model
        if levers:
            single.loss.exclude_seen = mesh.loss.exclude_seen = True
            single.loss.temperature = mesh.loss.temperature = 0.5
        single.eval.item_chunk = mesh.eval.item_chunk = 16  # chunked scoring too (51 rows: a ragged last chunk)
        with tempfile.TemporaryDirectory() as tmp:
            a = train_and_evaluate(single, f"{tmp}/single")
            b = train_and_evaluate(mesh, f"{tmp}/mesh")
        model = f"{model} (exclude_seen, temperature 0.5)" if levers else model
        np.testing.assert_allclose(b["train_loss"], a["train_loss"], rtol=1e-5, err_msg=model)
        for split in ("valid", "test"):
            for protocol in ("full", "sampled"):
                for name, value in a[split][protocol].items():
                    got = b[split][protocol][name]
                    np.testing.assert_allclose(got, value, atol=1e-6, err_msg=f"{model} {split} {name}")


def check_sharded_recommend():
    """recommend() on a 4 x 2 mesh (item shards of 26 rows, chunks of 7) equals the top-K of the full score matrix."""
    from recattn_jax.data.batches import left_pad
    from recattn_jax.models.scoring import score_all
    from recattn_jax.recommend import load_run, recommend

    config = tiny(data=4, model=2)
    with tempfile.TemporaryDirectory() as tmp:
        train_and_evaluate(config, tmp)
        _, split, model = load_run(tmp)  # one device's copy of the padded weights: the oracle
        users = np.arange(split.data.num_users)
        histories = split.history(users, "all")
        seen = left_pad(histories, max(len(h) for h in histories))
        scores = score_all(model, left_pad(histories, config.model.max_len))
        want_scores, want_ids = full_topk(scores, seen, 5, split.data.num_items)
        for chunk in (0, 7):
            recs = recommend(tmp, k=5, batch_size=16, item_chunk=chunk)
            np.testing.assert_array_equal(recs["item"], split.data.item_ids[np.asarray(want_ids).reshape(-1)])
            np.testing.assert_allclose(recs["score"], np.asarray(want_scores).reshape(-1), rtol=1e-5, atol=1e-6)


def check_restore_other_mesh():
    """Checkpoints of state sharded on 8 devices restore onto 4 and 1 (rows 56 -> 52 -> 51), and back (51 -> 52)."""
    from recattn_jax.parallel.reshard import restore_onto, save_state

    plans = {(1, 8): ((2, 2), (4, 1), (1, 1)), (1, 1): ((4, 2),)}
    with tempfile.TemporaryDirectory() as tmp:
        for (data, model), targets in plans.items():
            source = tiny(data=data, model=model)
            _, state, _, _ = build_training(source, NUM_ITEMS)
            saved = state[0]
            save_state(f"{tmp}/{data}x{model}", saved)
            for t_data, t_model in targets:
                target_config = tiny(data=t_data, model=t_model)
                _, target, _, _ = build_training(dataclasses.replace(target_config, seed=1), NUM_ITEMS)
                lay = ParallelLayout.from_config(target_config, NUM_ITEMS)
                restored = restore_onto(f"{tmp}/{data}x{model}", target[0], lay)
                leaves = jax.tree_util.tree_leaves(restored)
                for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(saved), leaves, strict=True):
                    name = f"{data}x{model} -> {t_data}x{t_model} {jax.tree_util.keystr(path)}"
                    got_host, want_host = np.asarray(got), np.asarray(want)
                    if got_host.ndim:
                        rows = min(got_host.shape[0], want_host.shape[0])
                        np.testing.assert_array_equal(got_host[:rows], want_host[:rows], err_msg=name)
                        assert not np.any(got_host[NUM_ITEMS + 1 :]), name  # mesh-pad rows are zeros
                    else:
                        np.testing.assert_array_equal(got_host, want_host, err_msg=name)
                    assert len(got.sharding.device_set) == t_data * t_model, (name, got.sharding)
                table = restored["embedding"]["items"]["embedding"][...]
                assert table.shape[0] == (lay.rows if lay else NUM_ITEMS + 1), table.shape


if __name__ == "__main__":
    assert len(jax.devices()) == 8, jax.devices()
    for name in sys.argv[1:]:  # several checks share one process: jax starts and compiles once
        globals()[f"check_{name}"]()
        print("ok", name, flush=True)
