"""Length-bucketed batches: every row once per epoch, fewer padded positions, the same loss per row."""

import jax
import numpy as np
from flax import nnx

from recattn_jax.data.batches import epoch_batches, next_item_arrays, take_rows
from recattn_jax.data.bucketing import bucket_lengths, padded_fraction, row_lengths, training_batches
from recattn_jax.data.load import load_split
from recattn_jax.losses import full_cross_entropy
from recattn_jax.models import build_model
from recattn_jax.train.epoch import packs_positions, run_epoch
from recattn_jax.train.step import build_training


def arrays_of(config):
    split = load_split(config.data)
    return split, next_item_arrays(split.train_sequences, config.model.max_len)


def test_bucketed_epoch_covers_every_row_once(tiny_config):
    config = tiny_config
    config.data.synthetic.max_length = 30
    _, arrays = arrays_of(config)
    lengths = row_lengths(arrays)
    plain = list(training_batches(arrays, 8, 10, np.random.default_rng(0), bucketing=False))
    bucketed = list(training_batches(arrays, 8, 10, np.random.default_rng(0), bucketing=True))
    assert len(bucketed) == len(plain)  # as many steps per epoch as without bucketing
    rows = np.concatenate([idx for idx, _ in bucketed])
    assert np.array_equal(np.sort(rows[rows >= 0]), np.arange(arrays.num_rows))
    for idx, length in bucketed:
        assert length in bucket_lengths(10) and lengths[idx[idx >= 0]].max() <= length
    assert padded_fraction(arrays, 8, 10, True) <= padded_fraction(arrays, 8, 10, False)


def test_cut_batch_gives_the_same_loss(tiny_config):
    """Cutting a batch to its bucket (newest positions) changes no hidden state that a loss reads."""
    split, arrays = arrays_of(tiny_config)
    model = build_model(tiny_config.model, split.data.num_items, backend="reference", rngs=nnx.Rngs(0))
    short = np.flatnonzero(row_lengths(arrays) <= 5)[:8]
    inputs, targets = take_rows(arrays.inputs, short), take_rows(arrays.targets, short)
    loss = nnx.jit(lambda model, x, y: full_cross_entropy(model.encode(x), model.item_table(), y, None))
    full = loss(model, inputs, targets)
    cut = loss(model, inputs[:, -5:], targets[:, -5:])
    np.testing.assert_allclose(cut, full, rtol=1e-5)


def test_bucketed_training_steps(tiny_config):
    tiny_config.train.bucketing = True
    split, arrays = arrays_of(tiny_config)
    _, state, step, _ = build_training(tiny_config, split.data.num_items)
    pack = packs_positions(tiny_config.loss.name, None)
    _, losses = run_epoch(step, state, arrays, tiny_config.train, tiny_config.seed, epoch=1, max_steps=2, pack=pack)
    assert len(losses) == 2 and np.all(np.isfinite(jax.device_get(losses)))


def test_bucketed_batches_weigh_their_positions_as_without_bucketing(tiny_config):
    """A batch's loss weight is its positions over the epoch's mean positions per batch, so a short bucket
    counts less; over the epoch the weights add up to the number of full batches."""
    tiny_config.train.bucketing = True
    tiny_config.data.synthetic.max_length = 30
    _, arrays = arrays_of(tiny_config)
    seen = []

    def spy_step(state, batch, rng, loss_weight=None):
        seen.append((float(loss_weight), int(np.count_nonzero(batch["targets"]))))
        return state, {"loss": 0.0}

    run_epoch(spy_step, None, arrays, tiny_config.train, tiny_config.seed, epoch=1, max_steps=10**6)
    weights, positions = np.array(seen).T
    mean_positions = tiny_config.train.batch_size * row_lengths(arrays).mean()
    np.testing.assert_allclose(weights, positions / mean_positions, rtol=1e-5)
    np.testing.assert_allclose(weights.sum(), arrays.num_rows / tiny_config.train.batch_size, rtol=1e-5)
    assert weights.min() < 0.8 < 1.2 < weights.max()  # short and long buckets are weighted differently


def test_loss_weight_scales_the_gradient_not_the_reported_loss(tiny_config):
    split, arrays = arrays_of(tiny_config)
    _, state, step, _ = build_training(tiny_config, split.data.num_items)
    before = jax.tree_util.tree_map(np.asarray, jax.device_get(state[0]))
    batch = arrays.batch(np.arange(tiny_config.train.batch_size), arrays.max_len)
    state, metrics = step(state, batch, jax.random.key(0), np.float32(0.0))  # a zero gradient: Adam moves nothing
    assert float(metrics["loss"]) > 1.0  # the unscaled CE over ~50 items
    after = jax.device_get(state[0])
    jax.tree_util.tree_map(np.testing.assert_array_equal, after, before)


def test_plain_shuffle_drops_only_columns_that_are_padding_in_every_row(tiny_config):
    """Without bucketing the batches hold the same rows in the same order as before; each is cut to the smallest
    bucket that holds its longest row, so the columns it loses are padding in every one of its rows."""
    tiny_config.train.bucketing, tiny_config.train.batch_size = False, 4
    tiny_config.data.synthetic.max_length, tiny_config.model.max_len = 30, 30  # histories of 5-30, buckets to 30
    _, arrays = arrays_of(tiny_config)
    max_len, lengths, train = arrays.max_len, row_lengths(arrays), tiny_config.train
    seen = []

    def spy_step(state, batch, rng, loss_weight=None):
        assert loss_weight is None  # a random batch's positions need no weight
        seen.append(batch)
        return state, {"loss": 0.0}

    run_epoch(spy_step, None, arrays, train, tiny_config.seed, epoch=1, max_steps=10**6)
    plain = epoch_batches(arrays.num_rows, train.batch_size, np.random.default_rng([tiny_config.seed, 1]))
    cut = 0
    for batch, idx in zip(seen, plain, strict=True):
        full = arrays.batch(idx, max_len)
        length = batch["inputs"].shape[1]
        longest = lengths[idx[idx >= 0]].max()
        assert length == min(b for b in bucket_lengths(max_len) if b >= longest)
        for name in ("inputs", "targets"):
            np.testing.assert_array_equal(batch[name], full[name][:, max_len - length :])
            assert not full[name][:, : max_len - length].any()
        cut += length < max_len
    assert cut > 0  # this data has batches of short rows only
