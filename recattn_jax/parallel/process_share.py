"""Each process reads its share of the data: the rows of every batch that its own devices hold.

A batch sharded over `data` splits into D = mesh.data equal blocks of rows; block j lives on the
devices at data position j. A process's share is the positions its devices sit at (all D in one
process); it builds only those blocks and `jax.make_array_from_process_local_data` assembles the
global batch from every process's blocks.

Training: the epoch order (a permutation of all rows, or the bucketed batches) is global and
deterministic (seed, epoch), exactly the single-process order, so P processes train on the batches
one process would, row for row (dropout and sampled negatives see the same rows at the same slots).
Each process takes its blocks of every global batch and pads only those rows' sequences
(`SequenceRows`): the [rows, max_len] arrays of all rows are never built.

Evaluation: the users split into D contiguous parts of ceil(U / D), part j evaluated at position j;
a process builds the eval arrays of its parts only. Metrics are exact: each position's owner (the
lowest process index at it) sums its users' metric values, and the sums and user counts are added
over processes before dividing.

What stays global: reading the file, id remapping, the k-core filter and the leave-one-out split
need every user and run on every process; so do the sampled-eval negatives (one random sequence
over all users, so every process count draws the same ones; each process keeps its users' rows).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import Mesh


@dataclasses.dataclass(frozen=True)
class ProcessShare:
    """The `data` positions whose batch rows this process's devices hold, of `size` in all."""

    positions: tuple[int, ...]
    owned: tuple[int, ...]  # the positions this process reports metrics for (no other lower process is there)
    size: int

    @classmethod
    def of(cls, mesh: Mesh) -> ProcessShare:
        me = jax.process_index()
        at = [{d.process_index for d in row} for row in mesh.devices]  # processes at each data position
        positions = tuple(j for j, procs in enumerate(at) if me in procs)
        return cls(positions, tuple(j for j in positions if min(at[j]) == me), len(at))

    def global_rows(self, local_rows: int) -> int:
        """Rows of the global batch of which this process holds `local_rows`."""
        return local_rows // len(self.positions) * self.size

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """This process's blocks of a global batch's row indices, in position order."""
        block = len(idx) // self.size
        return np.concatenate([idx[j * block : (j + 1) * block] for j in self.positions])

    def part_capacity(self, num_users: int) -> int:
        """Users per part: the users split into `size` contiguous parts of this many (the last ones fewer)."""
        return math.ceil(num_users / self.size)

    def users(self, num_users: int) -> tuple[np.ndarray, tuple[int, ...]]:
        """Indices (into all eval users) of this process's parts, and the size of each part."""
        n = self.part_capacity(num_users)
        parts = [np.arange(j * n, min((j + 1) * n, num_users)) for j in self.positions]
        return np.concatenate(parts), tuple(len(p) for p in parts)

    def eval_batches(self, parts: tuple[int, ...], capacity: int, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Per global eval batch of `batch_size`: (local row index per held slot, valid, owned) over this
        process's blocks. Every process yields the same number of batches; a block past its part's end
        repeats a row of the process that `valid` masks out."""
        block = batch_size // self.size
        starts = np.cumsum((0, *parts[:-1]))
        local = sum(parts)
        for step in range(0, capacity, block):
            slot = step + np.arange(block)
            rows, valid, owned = [], [], []
            for j, start, size in zip(self.positions, starts, parts, strict=True):
                rows.append(np.where(slot < size, start + slot, slot % local))
                valid.append(slot < size)
                owned.append(np.full(block, j in self.owned))
            yield np.concatenate(rows), np.concatenate(valid), np.concatenate(owned)


def local_rows(array: jax.Array) -> np.ndarray:
    """This process's rows of a `data`-sharded global array, in position order (replicas once)."""
    shards = {s.index[0].start or 0: s.data for s in array.addressable_shards}
    return np.concatenate([np.asarray(shards[start]) for start in sorted(shards)])


def sum_over_processes(values: np.ndarray) -> np.ndarray:
    """The sum of each process's `values` (float64), on every process."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values), np.float64).sum(axis=0)
