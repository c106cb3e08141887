import numpy as np
import pytest

from recattn_jax.data.batches import (
    epoch_batches,
    left_pad,
    next_item_arrays,
    sample_unseen,
    sequence_rows,
    take_rows,
)
from recattn_jax.data.preprocess import build_sequences, leave_one_out_split
from recattn_jax.data.readers import Interactions


def interactions(pairs):
    users, items = zip(*pairs, strict=True)
    return Interactions(np.asarray(users), np.asarray(items), source="test")


def test_remap_keeps_order_and_original_ids():
    data = build_sequences(interactions([(7, 100), (7, 300), (3, 200), (7, 200)]))
    assert data.num_users == 2 and data.num_items == 3
    np.testing.assert_array_equal(data.user_ids, [7, 3])  # order of first appearance
    np.testing.assert_array_equal(data.item_ids[1:], [100, 200, 300])  # 0 is padding
    np.testing.assert_array_equal(data.sequences[0], [1, 3, 2])
    np.testing.assert_array_equal(data.item_ids[data.sequences[1]], [200])


def test_k_core_is_iterated_and_reported():
    # item 9 appears once; dropping it leaves user 2 with one event, which then drops too
    pairs = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 9), (3, 1), (3, 2), (3, 3), (4, 2), (4, 3), (4, 1)]
    data = build_sequences(interactions(pairs), min_user_interactions=2, min_item_interactions=2)
    dropped = data.report["dropped_by_k_core"]
    assert dropped == {
        "min_user_interactions": 2,
        "min_item_interactions": 2,
        "interactions": 2,
        "users": 1,
        "items": 1,
    }
    assert data.num_users == 3 and data.report["interactions"] == 9


def test_leave_one_out_split():
    data = build_sequences(interactions([(1, i) for i in (5, 6, 7, 8)] + [(2, 5), (2, 6)]))
    split = leave_one_out_split(data)
    np.testing.assert_array_equal(split.eval_users, [0])  # user 2 has 2 events: training only
    assert data.report["users_train_only"]["count"] == 1
    np.testing.assert_array_equal(split.train_sequence(0), [1, 2])
    np.testing.assert_array_equal(split.train_sequence(1), [1, 2])
    np.testing.assert_array_equal(split.targets(np.array([0]), "valid"), [3])
    np.testing.assert_array_equal(split.targets(np.array([0]), "test"), [4])
    np.testing.assert_array_equal(split.history(np.array([0]), "test")[0], [1, 2, 3])


def test_left_pad_truncates_to_most_recent():
    out = left_pad([np.array([1, 2, 3, 4]), np.array([5]), np.array([], np.int32)], 3)
    np.testing.assert_array_equal(out, [[2, 3, 4], [0, 0, 5], [0, 0, 0]])


def test_next_item_arrays_shift_by_one():
    arrays = next_item_arrays([np.array([1, 2, 3]), np.array([4]), np.array([5, 6])], max_len=3)
    np.testing.assert_array_equal(arrays.users, [0, 2])  # user 1 has no next item
    np.testing.assert_array_equal(arrays.inputs, [[0, 1, 2], [0, 0, 5]])
    np.testing.assert_array_equal(arrays.targets, [[0, 2, 3], [0, 0, 6]])


def test_epoch_batches_cover_every_row_once():
    rng = np.random.default_rng(0)
    batches = list(epoch_batches(10, 4, rng))
    assert all(len(b) == 4 for b in batches)
    flat = np.concatenate(batches)
    assert sorted(flat[flat >= 0].tolist()) == list(range(10)) and (flat < 0).sum() == 2
    rows = take_rows(np.arange(1, 11)[:, None], batches[-1])
    assert (rows[batches[-1] < 0] == 0).all()


def test_sample_unseen_excludes_history_and_is_distinct():
    rng = np.random.default_rng(0)
    histories = [np.arange(1, 41), np.array([3, 5])]
    out = sample_unseen(histories, 50, 10, rng)
    for row, hist in zip(out, histories, strict=True):
        assert len(set(row)) == 10 and not set(row) & set(hist) and row.min() >= 1 and row.max() <= 50
    with pytest.raises(ValueError, match="only 10 unseen"):
        sample_unseen([np.arange(1, 41)], 50, 11, rng)


@pytest.mark.parametrize("with_events", [False, True])
def test_sequence_rows_batch_equals_next_item_arrays_batch(with_events):
    """Multi-process runs pad only the rows they read: the same batch as from the padded arrays of all rows."""
    sequences = [np.array([1, 2, 3, 4, 5, 6]), np.array([4]), np.array([5, 6]), np.array([7, 8, 9])]
    events = [s % 2 + 1 for s in sequences] if with_events else None  # event type per item: 1 or 2
    arrays, rows = next_item_arrays(sequences, 4, events), sequence_rows(sequences, 4, events)
    np.testing.assert_array_equal(rows.users, arrays.users)
    np.testing.assert_array_equal(rows.lengths, arrays.lengths)
    idx = np.array([2, -1, 0, 1])
    keys = ("inputs", "targets", "users") + (("events", "target_events") if with_events else ())
    for length in (4, 2):
        want, got = arrays.batch(idx, length), rows.batch(idx, length)
        assert set(got) == set(want) == set(keys)
        for key in keys:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} length {length}")
        if with_events:  # each event belongs to its item: 0 exactly on padding, the item's parity elsewhere
            for items, kinds in ((got["inputs"], got["events"]), (got["targets"], got["target_events"])):
                np.testing.assert_array_equal(kinds, np.where(items == 0, 0, items % 2 + 1))
