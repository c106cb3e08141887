"""Fixed-shape arrays for jitted steps: left-padded sequences, shuffled epochs, evaluation candidates."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np


def left_pad(sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
    """[U, length] int32: the last `length` items of each sequence, right-aligned, 0 on the left."""
    out = np.zeros((len(sequences), length), np.int32)
    for row, seq in enumerate(sequences):
        tail = seq[-length:] if length else seq[:0]
        out[row, length - len(tail) :] = tail
    return out


@dataclasses.dataclass(frozen=True)
class NextItemArrays:
    """Next-item training pairs: inputs[u, t] is followed by targets[u, t]; 0 marks padding.

    With an event column: events[u, t] is the event type (1..N) of inputs[u, t], target_events[u, t]
    that of targets[u, t] (BERT4Rec's masked rows are the targets); 0 on padding, as the items."""

    inputs: np.ndarray  # [R, L] int32
    targets: np.ndarray  # [R, L] int32
    users: np.ndarray  # [R] user index of each row
    events: np.ndarray | None = None  # [R, L] int32, or None when the data has no event column
    target_events: np.ndarray | None = None  # [R, L] int32, or None

    @property
    def num_rows(self) -> int:
        return len(self.users)

    @property
    def max_len(self) -> int:
        return self.inputs.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Positions with a target (not padding) in each row."""
        return np.count_nonzero(self.targets, axis=1)

    def batch(self, idx: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """Rows `idx` (-1: a padding row) cut to their newest `length` positions; event types, cut like
        the items they belong to, when the data has them."""
        cut = lambda a: take_rows(a, idx)[:, -length:]  # noqa: E731
        batch = {"inputs": cut(self.inputs), "targets": cut(self.targets), "users": _row_users(self.users, idx)}
        if self.events is not None:
            batch |= {"events": cut(self.events), "target_events": cut(self.target_events)}
        return batch


@dataclasses.dataclass(frozen=True)
class SequenceRows:
    """The rows of `next_item_arrays`, padded only when a batch reads them (multi-process runs: each
    process reads its own rows of every batch and never builds the [R, L] arrays of all rows)."""

    sequences: Sequence[np.ndarray]  # each row's whole training sequence
    users: np.ndarray  # [R] user index of each row
    max_len: int
    events: Sequence[np.ndarray] | None = None  # each row's event types, aligned with `sequences`, or None

    @property
    def num_rows(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray([min(len(s) - 1, self.max_len) for s in self.sequences], np.int64)

    def batch(self, idx: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """The same arrays as NextItemArrays.batch, from the sequences of rows `idx` only."""

        def shifted(per_row: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            rows = [per_row[i] if i >= 0 else np.zeros(1, np.int32) for i in idx]  # [0]: no target
            return left_pad([s[:-1] for s in rows], length), left_pad([s[1:] for s in rows], length)

        inputs, targets = shifted(self.sequences)
        batch = {"inputs": inputs, "targets": targets, "users": _row_users(self.users, idx)}
        if self.events is not None:
            batch |= dict(zip(("events", "target_events"), shifted(self.events), strict=True))
        return batch


def sequence_rows(
    train_sequences: Sequence[np.ndarray],
    max_len: int,
    train_events: Sequence[np.ndarray] | None = None,
    *,
    whole_history: bool = False,
) -> SequenceRows:
    """The rows of `next_item_arrays(train_sequences, max_len, train_events, whole_history=...)`, without
    padding them (a row's sequence is its window of the user's, a view)."""
    if not whole_history:
        users = _training_users(train_sequences)
        events = None if train_events is None else [train_events[u] for u in users]
        return SequenceRows([train_sequences[u] for u in users], users, max_len, events)
    windows = history_windows(train_sequences, max_len)
    events = None if train_events is None else _cut(train_events, windows)
    return SequenceRows(_cut(train_sequences, windows), windows[0], max_len, events)


def _training_users(train_sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Users with at least two training items (a user with one has no next item)."""
    return np.asarray([u for u, s in enumerate(train_sequences) if len(s) >= 2], np.int64)


def history_windows(train_sequences: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, starts, ends) [R]: row r is the window seq[starts[r]:ends[r]] of user users[r]'s sequence, whose
    inputs are window[:-1] and targets window[1:].

    Windows end at n, n - max_len, n - 2 max_len, ... (n = the sequence's length) while they hold a target,
    and span at most max_len + 1 items: each item but the first is a target of exactly one window. The rows
    come in rounds: every user's newest window (the rows of `whole_history=False`, in the same order), then
    every second-newest window, and so on."""
    users, starts, ends = [], [], []
    end_of = {u: len(s) for u, s in enumerate(train_sequences) if len(s) >= 2}
    while end_of:
        for u, end in end_of.items():
            users.append(u)
            starts.append(max(0, end - max_len - 1))
            ends.append(end)
        end_of = {u: end - max_len for u, end in end_of.items() if end - max_len >= 2}
    return np.asarray(users, np.int64), np.asarray(starts, np.int64), np.asarray(ends, np.int64)


def _cut(per_user: Sequence[np.ndarray], windows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """Each window of `history_windows` as a view of its user's array."""
    return [per_user[u][a:b] for u, a, b in zip(*windows, strict=True)]


def _row_users(users: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.where(idx < 0, -1, users[np.maximum(idx, 0)])  # -1: a padding row


def next_item_arrays(
    train_sequences: Sequence[np.ndarray],
    max_len: int,
    train_events: Sequence[np.ndarray] | None = None,
    *,
    whole_history: bool = False,
) -> NextItemArrays:
    """One row per user with at least two training items (a user with one has no next item): the newest
    max_len targets of each.

    `train_events`: per user, the event type of each training item (aligned with train_sequences).
    `whole_history`: also the older targets, in more rows per user (`history_windows`): every training
    target once per epoch, instead of only a user's newest max_len."""
    if whole_history:  # the windows padded all at once: the same arrays as SequenceRows' batches of them
        rows = sequence_rows(train_sequences, max_len, train_events, whole_history=True)
        padded = rows.batch(np.arange(rows.num_rows), max_len)
        if train_events is None:
            return NextItemArrays(padded["inputs"], padded["targets"], rows.users, None, None)
        window_events = padded["events"], padded["target_events"]
        return NextItemArrays(padded["inputs"], padded["targets"], rows.users, *window_events)
    users = _training_users(train_sequences)

    def shifted(per_user: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # (inputs, targets): each row's items but the last, and but the first
        return left_pad([per_user[u][:-1] for u in users], max_len), left_pad([per_user[u][1:] for u in users], max_len)

    inputs, targets = shifted(train_sequences)
    events, target_events = shifted(train_events) if train_events is not None else (None, None)
    return NextItemArrays(inputs, targets, users, events, target_events)


def target_positions(targets: np.ndarray, quantum: int) -> np.ndarray:
    """[P] int32 flat indices of the positions of `targets` [B, L] that have a target (not 0), padded with
    the index of a padding position up to a multiple of `quantum` (at most B * L), so that a jitted step
    sees a few lengths P, not one per batch."""
    flat = targets.reshape(-1)
    valid = np.flatnonzero(flat)
    size = min(flat.size, max(quantum, -(-len(valid) // quantum) * quantum))
    if size == len(valid):
        return valid.astype(np.int32)
    pad = np.flatnonzero(flat == 0)[0]  # exists: fewer valid positions than size <= B * L
    return np.concatenate([valid, np.full(size - len(valid), pad)]).astype(np.int32)


def step_positions(targets: np.ndarray) -> np.ndarray:
    """`target_positions` padded to a multiple of an eighth of the batch's [B, L] positions, as a training step
    takes them: at most 8 lengths P per batch shape, so at most 8 compiles per bucket length."""
    return target_positions(targets, max(1, targets.size // 8))


def epoch_batches(num_rows: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled row indices in batches of exactly `batch_size`; the last is padded with -1."""
    order = rng.permutation(num_rows)
    for start in range(0, num_rows, batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < batch_size:
            idx = np.concatenate([idx, np.full(batch_size - len(idx), -1, idx.dtype)])
        yield idx


def take_rows(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """array[idx] with rows of zeros (all padding) where idx == -1."""
    out = array[np.maximum(idx, 0)]
    out[idx < 0] = 0
    return out


def sample_unseen(histories: Sequence[np.ndarray], num_items: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """[U, count] distinct items in 1..num_items per user, none in that user's history."""
    out = np.zeros((len(histories), count), np.int32)
    for row, hist in enumerate(histories):
        unseen = num_items - len(np.unique(hist))
        if unseen < count:
            raise ValueError(f"user row {row} has only {unseen} unseen items; {count} negatives were asked")
        chosen = np.empty(0, np.int64)
        while len(chosen) < count:  # rejection sampling keeps this cheap for large catalogues
            draw = rng.integers(1, num_items + 1, size=2 * count + 16)
            draw = draw[~np.isin(draw, hist)]
            _, first = np.unique(np.concatenate([chosen, draw]), return_index=True)
            chosen = np.concatenate([chosen, draw])[np.sort(first)]
        out[row] = chosen[:count]
    return out
