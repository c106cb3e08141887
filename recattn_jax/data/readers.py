"""Readers of user-behaviour logs into `Interactions` (one row per event, per-user time order).

SASRec text: `user item` per line, already time-ordered per user (file order is time order).
Tables (CSV / Parquet): user, item and optional timestamp columns. Rows are stably sorted by
(user, timestamp): events with equal timestamps keep their file order, which decides the
leave-one-out targets when a user's last events tie. Timestamps are numbers or ISO-8601 strings.

Ids beyond int64 (20-digit log ids) are read as uint64; duplicate events (the same user, item and time;
in SASRec text, the same line twice in a row) are kept, counted in the data report and warned about.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recattn_jax.errors import DataError, cut


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Events in per-user chronological order; ids are the original ones (ints or strings)."""

    users: np.ndarray  # [E]
    items: np.ndarray  # [E]
    source: str  # file (or generator) the events came from, for messages
    events: np.ndarray | None = None  # [E] event type (click, purchase, ...) where the data has one
    duplicates: int = 0  # events repeating an earlier one (same user, item and time), kept as read

    def __post_init__(self):
        if len(self.users) != len(self.items):
            raise ValueError("users and items must have the same length")


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    return path


def read_sasrec_txt(path: str | os.PathLike) -> Interactions:
    """Read `user item` lines (integer ids); file order is each user's time order."""
    path = _existing_file(path)
    try:  # fast path; on any failure the slow scan below finds and names the bad line
        table = pd.read_csv(path, sep=" ", header=None, dtype=np.int64, engine="c", skip_blank_lines=False)
        if table.shape[1] != 2 or table.isna().any().any():
            raise ValueError
        users, items = table[0].to_numpy(), table[1].to_numpy()
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        users, items = _scan_sasrec_txt(path)
    if len(users) == 0:
        raise DataError(f"{path}: no interactions in the file")
    # the same line twice in a row: one event logged twice (a user re-watching shows up later, not at once)
    repeated = int(np.sum((users[1:] == users[:-1]) & (items[1:] == items[:-1]))) if len(users) > 1 else 0
    _warn_duplicates(path, repeated, "consecutive identical lines")
    return Interactions(users=users, items=items, source=str(path), duplicates=repeated)


def _scan_sasrec_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    users: list[int] = []
    items: list[int] = []
    blank = None  # the first blank line: an error unless only blank lines follow it
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                blank = blank or lineno
                continue
            if blank is not None:
                raise DataError(f"{path.name} line {blank}: expected 'user item', got an empty line")
            if len(fields) != 2:
                raise DataError(
                    f"{path.name} line {lineno}: expected 'user item', got {len(fields)} fields: {cut(line.strip())}"
                )
            for kind, token, out in (("user", fields[0], users), ("item", fields[1], items)):
                try:
                    out.append(int(token))
                except ValueError:
                    raise DataError(f"{path.name} line {lineno}: {kind} id {cut(token)} is not an integer") from None
    return _id_array(users, path, "user"), _id_array(items, path, "item")


def _id_array(ids: list[int], path: Path, kind: str) -> np.ndarray:
    """int64 ids, or uint64 where ids reach 2**63 (20-digit log ids); beyond 64 bits: an error naming the line."""
    try:
        return np.asarray(ids, np.int64)
    except OverflowError:
        pass
    try:
        return np.asarray(ids, np.uint64)
    except OverflowError:
        line = next(i for i, v in enumerate(ids, start=1) if not 0 <= v < 2**64)
        raise DataError(
            f"{path.name} line {line}: {kind} id {cut(str(ids[line - 1]))} does not fit in 64 bits (with negative ids, "
            "every id must lie in -2**63 .. 2**63-1)"
        ) from None


def _warn_duplicates(path: Path, count: int, what: str) -> None:
    if count:
        print(
            f"warning: {path.name}: {count} duplicate events ({what}); kept, counted in results.json "
            "data.duplicate_events",
            file=sys.stderr,
            flush=True,
        )


def read_table(
    path: str | os.PathLike,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str | None = "timestamp",
    event_col: str | None = None,
) -> Interactions:
    """Read a CSV or Parquet log; rows are stably sorted by (user, time): ties keep file order."""
    path = _existing_file(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no columns in the file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        raise DataError(f"{path}: cannot be parsed as a table ({e})") from None
    wanted = [c for c in (user_col, item_col, time_col, event_col) if c is not None]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the file has {list(table.columns)}")
    if len(table) == 0:
        raise DataError(f"{path}: no interactions in the file")
    is_csv = path.suffix.lower() not in (".parquet", ".pq")
    for col in wanted:
        bad = table[col].isna().to_numpy()
        if bad.any():
            raise DataError(f"{path.name} {_row_name(np.flatnonzero(bad)[0], is_csv)}: column {col!r} is empty")
    for col, kind in ((user_col, "user"), (item_col, "item")):
        table[col] = _integral_ids(table[col], path, kind, is_csv)
    order = np.arange(len(table))
    duplicates = 0
    if time_col is not None:
        times = _timestamps(table[time_col], path, is_csv)
        # stable: events of one user at the same time keep their file order
        order = np.lexsort((np.arange(len(table)), times, _group_keys(table[user_col])))
        keys = pd.DataFrame({"user": table[user_col].to_numpy(), "item": table[item_col].to_numpy(), "time": times})
        duplicates = int(keys.duplicated().sum())
        _warn_duplicates(path, duplicates, f"the same {user_col}, {item_col} and {time_col}")
    else:
        order = np.argsort(_group_keys(table[user_col]), kind="stable")
    events = table[event_col].to_numpy()[order] if event_col else None
    return Interactions(
        users=table[user_col].to_numpy()[order],
        items=table[item_col].to_numpy()[order],
        source=str(path),
        events=events,
        duplicates=duplicates,
    )


def _integral_ids(ids: pd.Series, path: Path, kind: str, is_csv: bool) -> pd.Series:
    """Float ids (Parquet, or CSV with `7.0`) as integers, as the text reader reads them; `7.5` is an error."""
    if not pd.api.types.is_float_dtype(ids):
        return ids
    values = ids.to_numpy()
    fractional = values != np.floor(values)
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise DataError(f"{path.name} {_row_name(row, is_csv)}: {kind} id {float(values[row])!r} is not an integer")
    return ids.astype(np.int64)


def _timestamps(column: pd.Series, path: Path, is_csv: bool) -> np.ndarray:
    """Numbers as they are; otherwise ISO-8601 date-times (with or without a zone; UTC when none) in ns."""
    numbers = pd.to_numeric(column, errors="coerce")
    if not numbers.isna().any():
        return numbers.to_numpy()
    dates = pd.to_datetime(column.astype(str), format="ISO8601", utc=True, errors="coerce")
    if not dates.isna().any():
        return dates.astype("int64").to_numpy()
    bad = (numbers.isna() & dates.isna()).to_numpy()
    row = int(np.flatnonzero(bad if bad.any() else numbers.isna().to_numpy())[0])
    raise DataError(
        f"{path.name} {_row_name(row, is_csv)}: timestamp {cut(column.iloc[row])} is not a number (nor an ISO-8601 "
        "date-time; a file uses one of the two)"
    )


def _group_keys(users: pd.Series) -> np.ndarray:
    """Integer keys that group equal user ids in order of first appearance."""
    return pd.factorize(users)[0]


def _row_name(row: int, is_csv: bool) -> str:
    # CSV: data row r sits on line r + 2 (line 1 is the header)
    return f"line {row + 2}" if is_csv else f"row {row}"
