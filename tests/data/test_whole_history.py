"""train.whole_history: every training target once per epoch, with the inputs of its window before it."""

import numpy as np
import pytest

from recattn_jax.data.batches import history_windows, left_pad, next_item_arrays, sequence_rows, target_positions
from recattn_jax.data.bucketing import row_lengths, training_batches
from recattn_jax.train.epoch import run_epoch


def random_sequences(rng, users=40, max_items=60, num_items=30):
    """Lengths 0..max_items (0 and 1: no target), items 1..num_items with repeats."""
    return [rng.integers(1, num_items + 1, size=rng.integers(0, max_items)).astype(np.int32) for _ in range(users)]


@pytest.mark.parametrize("max_len", [1, 4, 7, 10])
def test_every_target_once_with_its_window_inputs(max_len):
    rng = np.random.default_rng(max_len)
    seqs = random_sequences(rng)
    events = [rng.integers(1, 4, size=len(s)).astype(np.int32) for s in seqs]
    arrays = next_item_arrays(seqs, max_len, events, whole_history=True)
    _, starts, _ = history_windows(seqs, max_len)
    pairs = {}  # (user, index of the target in its sequence) -> (inputs before it in its row, its event)
    for r in range(arrays.num_rows):
        u, start = int(arrays.users[r]), int(starts[r])
        for t in np.flatnonzero(arrays.targets[r]):
            # left-padded: the row's last position holds the window's last item
            index = start + 1 + t - (arrays.max_len - np.count_nonzero(arrays.targets[r]))
            assert (u, index) not in pairs, "a target is trained on twice"
            pairs[u, index] = (arrays.inputs[r, : t + 1], arrays.target_events[r, t], arrays.events[r, : t + 1])
            assert arrays.targets[r, t] == seqs[u][index]
    expected = {(u, i) for u, s in enumerate(seqs) for i in range(1, len(s))}
    assert set(pairs) == expected  # every target once: none lost, none invented
    for (u, i), (inputs, target_event, input_events) in pairs.items():
        context = inputs[inputs != 0]
        # the window's items before the target, as many as the window holds (at most max_len), in order
        assert 1 <= len(context) <= min(i, max_len)
        np.testing.assert_array_equal(context, seqs[u][i - len(context) : i])
        np.testing.assert_array_equal(input_events[inputs != 0], events[u][i - len(context) : i])
        assert target_event == events[u][i]
    assert np.all(arrays.lengths >= 1) and np.all(arrays.lengths <= max_len)


def test_windows_are_full_but_the_oldest():
    seqs = [np.arange(1, 24, dtype=np.int32)]  # 23 items, 22 targets: windows of 5 targets end at 23, 18, ...
    users, starts, ends = history_windows(seqs, 5)
    np.testing.assert_array_equal(ends, [23, 18, 13, 8, 3])
    np.testing.assert_array_equal(starts, [17, 12, 7, 2, 0])
    assert np.all(users == 0)


def test_off_is_todays_arrays_and_on_starts_with_them():
    rng = np.random.default_rng(0)
    seqs = random_sequences(rng)
    events = [rng.integers(1, 4, size=len(s)).astype(np.int32) for s in seqs]
    off = next_item_arrays(seqs, 10, events)
    users = [u for u, s in enumerate(seqs) if len(s) >= 2]
    np.testing.assert_array_equal(off.inputs, left_pad([seqs[u][:-1] for u in users], 10))
    np.testing.assert_array_equal(off.targets, left_pad([seqs[u][1:] for u in users], 10))
    np.testing.assert_array_equal(off.users, users)
    on = next_item_arrays(seqs, 10, events, whole_history=True)
    assert on.num_rows > off.num_rows
    for name in ("inputs", "targets", "users", "events", "target_events"):  # round 0: each user's newest window
        np.testing.assert_array_equal(getattr(on, name)[: off.num_rows], getattr(off, name))


def test_sequence_rows_give_the_same_batches():
    rng = np.random.default_rng(1)
    seqs = random_sequences(rng)
    events = [rng.integers(1, 4, size=len(s)).astype(np.int32) for s in seqs]
    arrays = next_item_arrays(seqs, 8, events, whole_history=True)
    rows = sequence_rows(seqs, 8, events, whole_history=True)
    assert rows.num_rows == arrays.num_rows
    np.testing.assert_array_equal(rows.lengths, arrays.lengths)
    idx = np.concatenate([rng.permutation(arrays.num_rows)[:13], [-1, -1]])
    for length in (8, 3):
        a, b = arrays.batch(idx, length), rows.batch(idx, length)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_bucketed_epoch_packs_and_weighs_every_window(tiny_config):
    """Bucketing, packed target positions and loss weights over the larger set of rows."""
    tiny_config.train.bucketing = True
    tiny_config.train.whole_history = True
    rng = np.random.default_rng(2)
    seqs = random_sequences(rng, users=50, max_items=45)
    arrays = next_item_arrays(seqs, tiny_config.model.max_len, whole_history=True)
    assert arrays.num_rows > 2 * sum(len(s) >= 2 for s in seqs)
    seen = []

    def spy_step(state, batch, rng, loss_weight=None):
        kept = batch["targets"].reshape(-1)[batch["positions"]]
        seen.append((float(loss_weight), int(np.count_nonzero(batch["targets"])), int(np.count_nonzero(kept))))
        return state, {"loss": 0.0}

    run_epoch(spy_step, None, arrays, tiny_config.train, tiny_config.seed, epoch=1, max_steps=10**6, pack=True)
    weights, positions, packed = np.array(seen).T
    assert positions.sum() == sum(max(len(s) - 1, 0) for s in seqs)  # every target, once
    np.testing.assert_array_equal(packed, positions)  # the packed positions keep every target
    mean_positions = tiny_config.train.batch_size * row_lengths(arrays).mean()
    np.testing.assert_allclose(weights, positions / mean_positions, rtol=1e-5)
    batches = list(training_batches(arrays, 16, 10, np.random.default_rng(0), bucketing=True))
    rows = np.concatenate([idx for idx, _ in batches])
    assert np.array_equal(np.sort(rows[rows >= 0]), np.arange(arrays.num_rows))
    flat = arrays.batch(batches[0][0], batches[0][1])["targets"]
    assert np.count_nonzero(flat.reshape(-1)[target_positions(flat, 8)]) == np.count_nonzero(flat)
