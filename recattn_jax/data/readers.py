"""Readers of user-behaviour logs into `Interactions` (one row per event, per-user time order).

SASRec text: `user item` per line, already time-ordered per user (file order is time order).
Tables (CSV / Parquet): user, item and optional timestamp columns. Rows are stably sorted by
(user, timestamp): events with equal timestamps keep their file order, which decides the
leave-one-out targets when a user's last events tie. Timestamps are numbers or ISO-8601 strings.
CSV ids are read as written: integers where every id of the column is one written plainly (`7`, `-3`),
otherwise strings (`0000000006`, an ASIN, stays itself); float ids must be exact integers below 2**53.
Text files may start with a UTF-8 byte-order mark.

Ids beyond int64 (20-digit log ids) are read as uint64; duplicate events (the same user, item and time;
in SASRec text, the same line twice in a row) are kept, counted in the data report and warned about.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recattn_jax.errors import ConfigError, DataError, cut

# SASRec text ids: ASCII digits with an optional sign (int() would also take `1_0` and non-ASCII digits)
TEXT_INTEGER = re.compile(r"[+-]?[0-9]+")
# the bytes of a file whose every token the fast parser reads as the scan would (it also takes `1.0` and `1e3`)
_PLAIN_INTEGER_BYTES = np.zeros(256, bool)
_PLAIN_INTEGER_BYTES[list(b"0123456789+- \r\n")] = True
# a CSV id column is integers only when every id is written like this: ASCII digits, no leading zero, no `+`
_CANONICAL_INTEGER = r"0|-?[1-9][0-9]*"
_ZERO_PADDED = r"-?0[0-9]+"  # `0000000006`: an id string (an ASIN), not the number 6
_EXACT_FLOAT_LIMIT = 2**53  # from here on, float64 no longer holds every integer


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
    text = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:  # fast path; on any failure the slow scan below finds and names the bad line
        if not _PLAIN_INTEGER_BYTES[np.frombuffer(text, np.uint8)].all():
            raise ValueError  # `1.0`, `1e3`, tabs, `1_0`: the scan judges each token
        table = pd.read_csv(io.BytesIO(text), sep=" ", header=None, dtype=np.int64, engine="c", skip_blank_lines=False)
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
    with path.open(encoding="utf-8-sig", errors="replace") as f:
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
                if not TEXT_INTEGER.fullmatch(token):
                    hint = " (ASCII digits with an optional sign)" if _python_int(token) else ""
                    raise DataError(f"{path.name} line {lineno}: {kind} id {cut(token)} is not an integer{hint}")
                out.append(int(token))
    return _id_array(users, path, "user"), _id_array(items, path, "item")


def _python_int(token: str) -> bool:
    """int() reads `token` (as `1_0` or `٣`, which the text format does not take)."""
    try:
        int(token)
    except ValueError:
        return False
    return True


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
    columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col, "event_col": event_col}
    clash = column_clash(**columns)
    if clash is not None:
        raise ConfigError(f"{clash[1]}={columns[clash[1]]!r} names the same column as {clash[0]}")
    path = _existing_file(path)
    is_csv = path.suffix.lower() not in (".parquet", ".pq")
    try:
        if not is_csv:
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(
                path,
                sep="\t" if path.suffix.lower() == ".tsv" else ",",
                dtype={user_col: str, item_col: str},  # as written: `0000000006` is not 6 (_csv_ids decides)
                encoding="utf-8-sig",
            )
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
    for col in wanted:
        bad = table[col].isna().to_numpy()
        if bad.any():
            raise DataError(f"{path.name} {_row_name(np.flatnonzero(bad)[0], is_csv)}: column {col!r} is empty")
    for col, kind in ((user_col, "user"), (item_col, "item")):
        table[col] = _csv_ids(table[col], path, kind) if is_csv else _integral_ids(table[col], path, kind, is_csv)
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


def column_clash(**columns: str | None) -> tuple[str, str] | None:
    """The first two of the named columns (e.g. user_col=..., item_col=...) that are one column; None: unused."""
    seen: dict[str, str] = {}
    for role, column in columns.items():
        if column is None:
            continue
        if column in seen:
            return seen[column], role
        seen[column] = role
    return None


def _csv_ids(ids: pd.Series, path: Path, kind: str) -> pd.Series:
    """CSV ids, read as text: integers where every id is written as one (`7`, `-3`), numbers where every id is
    a number and none is zero-padded (`7.0`: see _integral_ids), otherwise the strings as written."""
    if ids.str.fullmatch(_CANONICAL_INTEGER).all():
        return pd.Series(_integer_array(ids.to_numpy(object)), index=ids.index)
    if ids.str.fullmatch(_ZERO_PADDED).any():
        return ids
    numbers = pd.to_numeric(ids, errors="coerce")  # takes what pandas' CSV parser takes as a number
    if numbers.isna().any() or not pd.api.types.is_numeric_dtype(numbers):
        return ids
    return _integral_ids(numbers, path, kind, is_csv=True)


def _integer_array(ids: np.ndarray) -> np.ndarray:
    """int64; uint64 where ids reach 2**63 (20-digit log ids); beyond either, Python ints, as pandas reads them."""
    for dtype in (np.int64, np.uint64):
        try:
            return ids.astype(dtype)
        except (OverflowError, ValueError):
            pass
    return np.asarray([int(i) for i in ids], object)


def _integral_ids(ids: pd.Series, path: Path, kind: str, is_csv: bool) -> pd.Series:
    """Float ids (Parquet, or CSV with `7.0`) as integers (SASRec text takes integers only); an id that is not an
    exact integer (`7.5`, `inf`, or 2**53 and beyond, where `1e20` may stand for many ids) is an error."""
    if not pd.api.types.is_float_dtype(ids):
        return ids
    values = ids.to_numpy()
    finite = np.isfinite(values)
    fractional = finite & (values != np.floor(np.where(finite, values, 0)))
    inexact = finite & (np.abs(np.where(finite, values, 0)) >= _EXACT_FLOAT_LIMIT)
    bad = ~finite | fractional | inexact
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where, value = f"{path.name} {_row_name(row, is_csv)}", float(values[row])
        if fractional[row]:
            raise DataError(f"{where}: {kind} id {value!r} is not an integer")
        problem = (
            "is not a finite number"
            if not finite[row]
            else "is a float of magnitude 2**53 or more, where float64 no longer holds every integer (it may stand "
            "for another id); store the ids as integers or strings"
        )
        raise DataError(f"{where}: {kind} id {value!r} in column {ids.name!r} {problem}")
    return ids.astype(np.int64)


def _timestamps(column: pd.Series, path: Path, is_csv: bool) -> np.ndarray:
    """Numbers as they are; otherwise ISO-8601 date-times (with or without a zone; UTC when none) in ns."""
    numbers = pd.to_numeric(column, errors="coerce")
    if not numbers.isna().any():
        values = numbers.to_numpy()
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataError(
                f"{path.name} {_row_name(row, is_csv)}: timestamp {float(values[row])!r} is not a finite number"
            )
        return values
    dates = pd.to_datetime(column.astype(str), format="ISO8601", utc=True, errors="coerce")
    if not dates.isna().any():
        return dates.astype("int64").to_numpy()
    bad = (numbers.isna() & dates.isna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path.name} {_row_name(row, is_csv)}: timestamp {cut(column.iloc[row])} is not a number (nor an "
            "ISO-8601 date-time; a file uses one of the two)"
        )
    number_only, date_only = (numbers.notna() & dates.isna()).to_numpy(), numbers.isna().to_numpy()
    raise _mixed_timestamps(column, number_only, date_only, path, is_csv)


def _mixed_timestamps(
    column: pd.Series, number_only: np.ndarray, date_only: np.ndarray, path: Path, is_csv: bool
) -> DataError:
    """Every timestamp is a number or an ISO-8601 date-time, but not all the same: name the first of the fewer."""
    formats = [("a number", "numbers", number_only), ("an ISO-8601 date-time", "ISO-8601 date-times", date_only)]
    # the fewer rows are the odd ones out; on a tie, the format that starts later
    formats.sort(key=lambda f: (int(f[2].sum()), -int(np.flatnonzero(f[2])[0])))
    (odd, _, minority), (one, many, majority) = formats
    row, first, count = int(np.flatnonzero(minority)[0]), int(np.flatnonzero(majority)[0]), int(majority.sum())
    return DataError(
        f"{path.name} {_row_name(row, is_csv)}: column {column.name!r} mixes timestamp formats: "
        f"{cut(column.iloc[row])} is {odd}, while {f'1 row is {one}' if count == 1 else f'{count} rows are {many}'} "
        f"({_row_name(first, is_csv)}: {cut(column.iloc[first])}); a file uses one of the two"
    )


def _group_keys(users: pd.Series) -> np.ndarray:
    """Integer keys that group equal user ids in order of first appearance."""
    return pd.factorize(users)[0]


def _row_name(row: int, is_csv: bool) -> str:
    # CSV: data row r sits on line r + 2 (line 1 is the header)
    return f"line {row + 2}" if is_csv else f"row {row}"
