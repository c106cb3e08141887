"""Length-bucketed training batches: rows of similar length together, padded to a few fixed lengths.

Rows are shuffled, stably sorted by their bucket (the smallest of BUCKET_FRACTIONS x max_len that
holds the row), cut into consecutive batches of `batch_size` (so an epoch has as many batches as
without bucketing), and the batches are shuffled. A batch is cut to its longest row's bucket length,
keeping the newest (right-aligned) positions, so jit compiles at most len(BUCKET_FRACTIONS) shapes and
positions keep their absolute index (the embedding counts positions from the right).

Without bucketing (the plain shuffle) a batch is cut the same way, to the smallest bucket length that holds
its longest row: only columns that are padding in every row go, so the model's outputs at the targets are
unchanged, and data of short histories (a mean of 9 items at max_len 200) no longer pays for 200 positions
a row. On ML-1M at max_len 200 every batch holds a row longer than 150, so its batches keep all 200.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recattn_jax.data.batches import NextItemArrays, SequenceRows, epoch_batches

BUCKET_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)


def bucket_lengths(max_len: int) -> np.ndarray:
    return np.unique([max(1, int(np.ceil(max_len * f))) for f in BUCKET_FRACTIONS])


def holding_bucket(buckets: np.ndarray, longest: int) -> int:
    """The smallest of `buckets` (sorted) that holds a row of `longest` positions."""
    return int(buckets[np.searchsorted(buckets, max(longest, 1))])


def row_lengths(arrays: NextItemArrays | SequenceRows) -> np.ndarray:
    """Positions with a target (not padding) in each row."""
    return arrays.lengths


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, max_len: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, int]]:
    """(row indices, padded length) per batch; indices padded with -1 to `batch_size` as in epoch_batches."""
    buckets = bucket_lengths(max_len)
    order = rng.permutation(len(lengths))
    bucket = np.searchsorted(buckets, np.maximum(lengths[order], 1))  # smallest bucket >= length
    order = order[np.argsort(bucket, kind="stable")]
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        length = holding_bucket(buckets, int(lengths[idx].max()))
        if len(idx) < batch_size:
            idx = np.concatenate([idx, np.full(batch_size - len(idx), -1, idx.dtype)])
        batches.append((idx, length))
    for i in rng.permutation(len(batches)):
        yield batches[i]


def training_batches(
    arrays: NextItemArrays | SequenceRows, batch_size: int, max_len: int, rng: np.random.Generator, bucketing: bool
) -> Iterator[tuple[np.ndarray, int]]:
    """(row indices, length to keep) per batch: bucketed, or the plain shuffle, each batch at the smallest bucket
    length that holds its longest row."""
    if bucketing:
        yield from bucketed_batches(row_lengths(arrays), batch_size, max_len, rng)
    else:
        buckets, lengths = bucket_lengths(max_len), row_lengths(arrays)
        for idx in epoch_batches(arrays.num_rows, batch_size, rng):
            yield idx, holding_bucket(buckets, int(lengths[idx[idx >= 0]].max()))


def padded_fraction(arrays: NextItemArrays, batch_size: int, max_len: int, bucketing: bool, seed: int = 0) -> float:
    """Share of the positions fed to the model that are padding, over one epoch."""
    lengths = row_lengths(arrays)
    total = valid = 0
    for idx, length in training_batches(arrays, batch_size, max_len, np.random.default_rng(seed), bucketing):
        total += len(idx) * length
        valid += int(lengths[idx[idx >= 0]].sum())
    return 1.0 - valid / total
