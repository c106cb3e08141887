"""Readers of user-behaviour logs into `Interactions` (one row per event, per-user time order).

SASRec text: `user item` per line, already time-ordered per user (file order is time order).
Tables (CSV / Parquet): user, item and optional timestamp columns. Rows are stably sorted by
(user, timestamp): events with equal timestamps keep their file order, which decides the
leave-one-out targets when a user's last events tie.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from recattn_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Events in per-user chronological order; ids are the original ones (ints or strings)."""

    users: np.ndarray  # [E]
    items: np.ndarray  # [E]
    source: str  # file (or generator) the events came from, for messages
    events: np.ndarray | None = None  # [E] event type (click, purchase, ...) where the data has one

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
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        users, items = _scan_sasrec_txt(path)
    if len(users) == 0:
        raise DataError(f"{path}: no interactions in the file")
    return Interactions(users=users, items=items, source=str(path))


def _scan_sasrec_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    users, items = [], []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if len(fields) != 2:
                got = "an empty line" if not fields else f"{len(fields)} fields: {line.strip()!r}"
                raise DataError(f"{path.name} line {lineno}: expected 'user item', got {got}")
            for kind, token, out in (("user", fields[0], users), ("item", fields[1], items)):
                try:
                    out.append(int(token))
                except ValueError:
                    raise DataError(f"{path.name} line {lineno}: {kind} id {token!r} is not an integer") from None
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


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
    order = np.arange(len(table))
    if time_col is not None:
        times = pd.to_numeric(table[time_col], errors="coerce")
        if times.isna().any():
            row = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise DataError(
                f"{path.name} {_row_name(row, is_csv)}: timestamp {table[time_col].iloc[row]!r} is not a number"
            )
        # stable: events of one user at the same time keep their file order
        order = np.lexsort((np.arange(len(table)), times.to_numpy(), _group_keys(table[user_col])))
    else:
        order = np.argsort(_group_keys(table[user_col]), kind="stable")
    events = table[event_col].to_numpy()[order] if event_col else None
    return Interactions(
        users=table[user_col].to_numpy()[order],
        items=table[item_col].to_numpy()[order],
        source=str(path),
        events=events,
    )


def _group_keys(users: pd.Series) -> np.ndarray:
    """Integer keys that group equal user ids in order of first appearance."""
    return pd.factorize(users)[0]


def _row_name(row: int, is_csv: bool) -> str:
    # CSV: data row r sits on line r + 2 (line 1 is the header)
    return f"line {row + 2}" if is_csv else f"row {row}"
