"""How a side-feature file covers the ids of the interaction data: none matched is an error (the run
would train on features of nothing), some missing is a warning with the counts."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

from recattn_jax.data.readers import TEXT_INTEGER  # an id written as an integer, in either file
from recattn_jax.errors import DataError, cut


def id_coverage(
    ids: Sequence[str],
    listed: Collection[str],
    *,
    file: str,
    source: str,
    what: str = "items",
    count_unused: bool = True,
) -> dict[str, int]:
    """Counts of the join of `ids` (the interaction data's, unique, as strings) with the ids `file` lists.

    Both sides are compared as the strings they are written as (1 and '0001' differ, as they do in the
    interaction readers). `count_unused`: also count and warn about rows of `file` for ids not in `source`
    (off where a file is a whole catalogue, e.g. MovieLens' movies.dat, of which a run uses a part)."""
    found = sum(1 for i in ids if i in listed)
    if ids and not found:
        raise DataError(f"none of the {len(ids):,} {what} of {source} is in {file} ({_mismatch(ids, listed, what)})")
    counts = {what: len(ids), f"{what}_with_features": found, f"{what}_without_features": len(ids) - found}
    known = set(ids)
    unused = [i for i in listed if i not in known] if count_unused else []
    if count_unused:
        counts["rows_for_unknown_ids"] = len(unused)
    parts = []
    if len(ids) > found:
        parts.append(f"{len(ids) - found:,} of the {len(ids):,} {what} of {source} lack side features (ID only)")
    if unused:
        parts.append(f"rows for {len(unused):,} ids not in {source} are unused (e.g. {_examples(unused)})")
    if parts:
        print(f"warning: {file}: {'; '.join(parts)}", file=sys.stderr, flush=True)
    return counts


def _mismatch(ids: Sequence[str], listed: Collection[str], what: str) -> str:
    if not listed:
        return f"it lists no {what}"
    text = f"the {what} look like {_examples(ids)}; the file's like {_examples(listed)}"
    if _as_numbers(ids) & _as_numbers(listed):
        text += "; some are equal as numbers, so the two files write ids differently (e.g. with leading zeros)"
    return text


def _as_numbers(ids: Collection[str]) -> set[int]:
    return {int(i) for i in ids if TEXT_INTEGER.fullmatch(i)}


def _examples(ids: Collection[str], count: int = 3) -> str:
    return ", ".join(cut(i, 24) for i in list(ids)[:count])
