"""A generic item-feature table: CSV/TSV with columns `item`, `text` and `categories` ('|'-separated).

Items of the interaction data that the table does not list, or with empty cells, have no side
features (their ID embedding only); how many is warned about and counted in results.json
(data.item_features). A table that matches no item, gives no words, lists an item twice or does not
parse is a DataError naming the file and the line."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from recattn_jax.errors import DataError, cut
from recattn_jax.features.coverage import id_coverage
from recattn_jax.features.item_features import ItemFeatures, build_item_features

DELIMITERS = ",\t;| :"  # those the header may be split by (sniffed from it, as pandas' sep=None did)


def read_feature_table(path: str | Path) -> dict[str, tuple[str, str]]:
    """item id (as written) -> (text, categories cell); a missing column reads as empty cells.

    Blank lines are skipped; any other row must have the header's number of fields and a non-empty,
    unique item id."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: not UTF-8 text ({e.reason} at byte {e.start:,})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","  # a header of one column
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    rows, end = [], 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num  # a quoted field may span lines: name the first
            if any(f.strip() for f in fields):
                rows.append((start, fields))
    except csv.Error as e:
        what = "a quoted field starts here and is never closed" if "end of data" in str(e) else "malformed"
        raise DataError(f"{path} line {end + 1}: {what} (csv: {e})") from None
    if not rows:
        raise DataError(f"{path}: empty; expected a header line such as 'item,text,categories' and a row per item")
    (_, header), *rows = rows
    if "item" not in header:
        raise DataError(f"{path}: no 'item' column (columns: {header})")
    if "text" not in header and "categories" not in header:
        raise DataError(f"{path}: neither a 'text' nor a 'categories' column, so no features (columns: {header})")
    columns = [header.index(c) if c in header else None for c in ("item", "text", "categories")]
    out: dict[str, tuple[str, str]] = {}
    line_of: dict[str, int] = {}
    for line, fields in rows:
        if len(fields) != len(header):
            raise DataError(
                f"{path} line {line}: {len(fields)} fields where the header has {len(header)}: "
                f"{cut(delimiter.join(fields))}"
            )
        item, text_cell, cats_cell = (fields[c] if c is not None else "" for c in columns)
        if not item.strip():
            raise DataError(f"{path} line {line}: empty item id")
        if item in out:
            raise DataError(
                f"{path}: item {cut(item)} has two rows, line {line_of[item]} and line {line}; give each item one row"
            )
        out[item], line_of[item] = (text_cell, cats_cell), line
    return out


def table_item_features(
    path: str | Path, item_ids: np.ndarray, *, min_df: int = 1, source: str = "the interaction data"
) -> ItemFeatures:
    """Features of item indices 1..I whose ids in `source` are item_ids[1:], joined as strings."""
    path = Path(path)
    table = read_feature_table(path)
    keys = [str(i) for i in item_ids[1:]]
    coverage = id_coverage(keys, table, file=str(path), source=source)
    texts, cats = zip(*(table.get(k, ("", "")) for k in keys), strict=True) if keys else ((), ())
    features = build_item_features(texts, [[c for c in cell.split("|") if c] for cell in cats], min_df=min_df)
    if features.tfidf.shape[1] == 0:
        raise DataError(
            f"{path}: the {coverage['items_with_features']:,} items of {source} it lists have no word in their "
            f"text and categories" + (f" that appears in at least {min_df} of them" if min_df != 1 else "")
        )
    return dataclasses.replace(features, coverage=coverage)
