"""From events to per-user item sequences: id remapping, k-core filtering, leave-one-out split.

Item ids are remapped to 1..I (0 is padding) in sorted order of the original ids, so a file whose
ids already are 1..I (SASRec's ml-1m.txt) keeps them. Original ids are kept for output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from recattn_jax.data.readers import Interactions
from recattn_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class SequenceData:
    sequences: list[np.ndarray]  # per user index: remapped item ids (int32, 1..I), in time order
    user_ids: np.ndarray  # [U] original id of each user index
    item_ids: np.ndarray  # [I + 1] original id of each item index; entry 0 (padding) is unused
    report: dict  # what was read, kept and dropped, and why
    events: list[np.ndarray] | None = None  # per user: event-type index per position, if the data has them

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_event_types(self) -> int:
        """Distinct event types (codes 1..N; 0 is padding), 0 when the data has no event column."""
        return 0 if self.events is None else len(self.report["event_types"])


def build_sequences(
    interactions: Interactions, *, min_user_interactions: int = 0, min_item_interactions: int = 0
) -> SequenceData:
    """Group events into per-user sequences after an optional iterated k-core filter."""
    users, items = np.asarray(interactions.users), np.asarray(interactions.items)
    report: dict[str, Any] = {
        "source": interactions.source,
        "interactions_read": len(users),
        "users_read": int(pd.unique(users).size),
        "items_read": int(pd.unique(items).size),
        "duplicate_events": int(interactions.duplicates),  # kept; the readers warn about them
    }
    keep = _k_core(users, items, min_user_interactions, min_item_interactions)
    report["dropped_by_k_core"] = {
        "min_user_interactions": min_user_interactions,
        "min_item_interactions": min_item_interactions,
        "interactions": int((~keep).sum()),
        "users": report["users_read"] - int(pd.unique(users[keep]).size),
        "items": report["items_read"] - int(pd.unique(items[keep]).size),
    }
    users, items = users[keep], items[keep]
    if len(users) == 0:
        raise DataError(
            f"{interactions.source}: no interactions left after the k-core filter "
            f"(min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions})"
        )
    item_ids, item_index = np.unique(items, return_inverse=True)
    item_index = (item_index + 1).astype(np.int32)  # 0 is padding
    # users in order of first appearance; a stable sort keeps each user's time order
    user_codes, user_ids = pd.factorize(users)
    order = np.argsort(user_codes, kind="stable")
    bounds = np.cumsum(np.bincount(user_codes, minlength=len(user_ids)))[:-1]
    sequences = np.split(item_index[order], bounds)
    events = None
    if interactions.events is not None:
        event_codes, event_names = pd.factorize(np.asarray(interactions.events)[keep])
        events = np.split((event_codes[order] + 1).astype(np.int32), bounds)  # 0 is padding
        report["event_types"] = [str(e) for e in event_names]
    report.update(users=len(sequences), items=len(item_ids), interactions=len(items))
    return SequenceData(
        sequences=sequences,
        user_ids=np.asarray(user_ids),
        item_ids=np.concatenate([np.asarray([item_ids[0]]), item_ids]),  # entry 0 is a placeholder
        report=report,
        events=events,
    )


def _k_core(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Mask of events kept after repeatedly removing users and items with too few events."""
    keep = np.ones(len(users), bool)
    if min_user <= 1 and min_item <= 1:
        return keep
    user_codes, item_codes = pd.factorize(users)[0], pd.factorize(items)[0]
    while True:
        user_counts = np.bincount(user_codes[keep], minlength=user_codes.max() + 1)
        item_counts = np.bincount(item_codes[keep], minlength=item_codes.max() + 1)
        new_keep = keep & (user_counts[user_codes] >= min_user) & (item_counts[item_codes] >= min_item)
        if new_keep.sum() == keep.sum():
            return keep
        keep = new_keep


@dataclasses.dataclass(frozen=True)
class LeaveOneOutSplit:
    """Per user: train on all but the last two items, validate on the second to last, test on the last.

    Users with fewer than 3 interactions are kept for training only (no valid/test target).
    """

    data: SequenceData
    eval_users: np.ndarray  # user indices that have a valid and a test target

    def train_sequence(self, user: int) -> np.ndarray:
        return _train_part(self.data.sequences[user])

    @property
    def train_sequences(self) -> list[np.ndarray]:
        return [self.train_sequence(u) for u in range(self.data.num_users)]

    @property
    def train_events(self) -> list[np.ndarray] | None:
        """Event types aligned with `train_sequences`; None when the data has no event column."""
        return None if self.data.events is None else [_train_part(e) for e in self.data.events]

    def history(self, users: np.ndarray, split: str) -> list[np.ndarray]:
        """The input sequence for predicting the `split` target ('valid', 'test' or 'all')."""
        return _history_part(self.data.sequences, users, split)

    def history_events(self, users: np.ndarray, split: str) -> list[np.ndarray] | None:
        """Event types aligned with `history(users, split)`; None when the data has no event column."""
        return None if self.data.events is None else _history_part(self.data.events, users, split)

    def targets(self, users: np.ndarray, split: str) -> np.ndarray:
        offset = {"valid": 2, "test": 1}[split]
        return np.asarray([self.data.sequences[u][-offset] for u in users], np.int32)


def _train_part(seq: np.ndarray) -> np.ndarray:
    return seq[:-2] if len(seq) >= 3 else seq


def _history_part(per_user: list[np.ndarray], users: np.ndarray, split: str) -> list[np.ndarray]:
    cut = {"valid": 2, "test": 1, "all": 0}[split]
    return [per_user[u][: len(per_user[u]) - cut] for u in users]


def leave_one_out_split(data: SequenceData) -> LeaveOneOutSplit:
    lengths = np.asarray([len(s) for s in data.sequences])
    eval_users = np.flatnonzero(lengths >= 3)
    data.report["users_train_only"] = {
        "count": int(len(lengths) - len(eval_users)),
        "reason": "fewer than 3 interactions: no valid and test target",
    }
    if len(eval_users) == 0:
        raise DataError(f"{data.report['source']}: no user has the 3 interactions a leave-one-out split needs")
    return LeaveOneOutSplit(data=data, eval_users=eval_users)
