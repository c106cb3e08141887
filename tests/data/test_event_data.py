"""Event types (data.event_col) travel with their items: training rows, buckets, eval sets; synthetic events."""

import numpy as np

from recattn_jax.config import DataConfig, EvalConfig
from recattn_jax.data.batches import next_item_arrays, take_rows
from recattn_jax.data.bucketing import training_batches
from recattn_jax.data.load import load_split
from recattn_jax.data.synthetic import SyntheticSpec, generate_synthetic, generate_synthetic_with_sequels
from recattn_jax.data.synthetic_events import synthetic_events
from recattn_jax.eval.ranking import build_eval_set

# user, item, timestamp, event: rows out of time order, so the reader's sort must move the events too
LOG = """user,item,timestamp,event
u1,10,3,click
u1,11,1,view
u1,12,2,purchase
u1,13,4,click
u1,14,5,purchase
u1,15,6,view
u2,10,2,purchase
u2,12,1,view
u2,13,3,click
u2,16,4,click
u3,11,1,click
u3,14,2,purchase
u3,15,3,view
u3,16,4,click
u3,17,5,click
u3,10,6,purchase
u3,12,7,view
"""
MAX_LEN = 5


def split_of(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return load_split(DataConfig(name="csv", path=str(path), event_col="event"))


def event_of(split) -> dict:
    """(original user, original item) -> event name, from the CSV itself."""
    rows = [line.split(",") for line in LOG.strip().splitlines()[1:]]
    names = split.data.report["event_types"]
    return {(u, int(i)): names.index(e) + 1 for u, i, _, e in rows}


def assert_aligned(split, users, items, events):
    """events[r, t] is the event of the item at items[r, t] for user users[r]; 0 exactly on padding."""
    truth = event_of(split)
    np.testing.assert_array_equal(events == 0, items == 0)
    for row, user in enumerate(users):
        for item, event in zip(items[row], events[row], strict=True):
            if item:
                assert event == truth[(split.data.user_ids[user], int(split.data.item_ids[item]))]


def test_event_types_are_named_and_counted(tmp_path):
    split = split_of(tmp_path)
    assert sorted(split.data.report["event_types"]) == ["click", "purchase", "view"]
    assert split.data.num_event_types == 3
    assert [len(e) for e in split.data.events] == [len(s) for s in split.data.sequences]


def test_training_rows_carry_the_events_of_their_inputs_and_targets(tmp_path):
    split = split_of(tmp_path)
    arrays = next_item_arrays(split.train_sequences, MAX_LEN, split.train_events)
    assert arrays.events.shape == arrays.inputs.shape and arrays.events.dtype == np.int32
    assert_aligned(split, arrays.users, arrays.inputs, arrays.events)
    assert_aligned(split, arrays.users, arrays.targets, arrays.target_events)
    assert arrays.events[0, 0] == 0  # u1 has 4 training items: 3 inputs, left-padded to 5


def test_bucketed_batches_keep_events_aligned(tmp_path):
    split = split_of(tmp_path)
    arrays = next_item_arrays(split.train_sequences, MAX_LEN, split.train_events)
    batches = list(training_batches(arrays, 2, MAX_LEN, np.random.default_rng(0), bucketing=True))
    assert any(length < MAX_LEN for _, length in batches)  # a cut batch is among them
    for idx, length in batches:  # as train/loop.py run_epoch cuts them
        inputs, events = take_rows(arrays.inputs, idx)[:, -length:], take_rows(arrays.events, idx)[:, -length:]
        users = np.where(idx < 0, 0, arrays.users[np.maximum(idx, 0)])
        assert_aligned(split, users, inputs, events)


def test_eval_sets_carry_the_history_events(tmp_path):
    split = split_of(tmp_path)
    for name in ("valid", "test"):
        eval_set = build_eval_set(split, name, MAX_LEN, EvalConfig(sampled=False))
        assert eval_set.events.shape == eval_set.inputs.shape
        assert_aligned(split, eval_set.users, eval_set.inputs, eval_set.events)


def test_no_event_column_no_events(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    split = load_split(DataConfig(name="csv", path=str(path)))
    assert split.data.num_event_types == 0 and split.train_events is None
    arrays = next_item_arrays(split.train_sequences, MAX_LEN, split.train_events)
    assert arrays.events is None and arrays.target_events is None
    assert build_eval_set(split, "test", MAX_LEN, EvalConfig(sampled=False)).events is None


SPEC = SyntheticSpec(num_users=300, num_items=400, mean_length=30, min_length=10, max_length=80, seed=3)


def test_synthetic_events_leave_the_items_unchanged_and_carry_signal():
    users, items, from_sequel = generate_synthetic_with_sequels(SPEC)
    plain_users, plain_items = generate_synthetic(SPEC)
    np.testing.assert_array_equal(users, plain_users)
    np.testing.assert_array_equal(items, plain_items)
    events = synthetic_events(users, from_sequel, SPEC.seed)
    assert set(events) == {"click", "purchase"}
    next_sequel = np.append(from_sequel[1:], False) & np.append(users[1:] == users[:-1], False)
    after_purchase, after_click = next_sequel[events == "purchase"].mean(), next_sequel[events == "click"].mean()
    assert after_purchase > 0.8 and after_click < 0.2  # a purchase is mostly followed by a sequel
    np.testing.assert_array_equal(events, synthetic_events(users, from_sequel, SPEC.seed))  # deterministic
