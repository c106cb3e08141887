"""Full-ranking and sampled evaluation of next-item prediction, batched over users.

Full ranking: the target against every item the user has not interacted with before it
(the history is masked, padding too). Sampled (SASRec paper): the target against `num_negatives`
items the user never interacted with, drawn once from a fixed seed.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.config import EvalConfig
from recattn_jax.data.batches import left_pad, sample_unseen
from recattn_jax.data.bucketing import bucket_lengths
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import ConfigError
from recattn_jax.eval.metrics import ranking_metrics, user_metrics
from recattn_jax.models.interface import model_kind
from recattn_jax.models.scoring import score_all, score_items, user_vectors
from recattn_jax.parallel.process_share import ProcessShare, local_rows, sum_over_processes
from recattn_jax.parallel.topk import item_ranks

SPLIT_SEEDS = {"valid": 1, "test": 2}  # valid and test draw different negatives from the same eval.seed
# A length group of its own must save this many encoded positions per pass (about 0.1 s of a 2-core CPU), else
# it joins the next longer group: a small eval set stays one group and compiles once.
MIN_SAVED_POSITIONS = 1 << 16


def finite_scores(scores: Float[Array, "..."]) -> Float[Array, "..."]:
    """NaN scores become -inf: a NaN compares false with everything, so it would rank first otherwise."""
    return jnp.where(jnp.isnan(scores), -jnp.inf, scores)


def full_ranks(
    scores: Float[Array, "B I"], targets: Int[Array, " B"], seen: Int[Array, "B P"], *, seen_distinct: bool = False
) -> Int[Array, " B"]:
    """0-based rank of each target among the items outside `seen` (0-padded) and padding.

    Counted by comparison, not by masking: every item scoring >= the target, minus the target itself,
    minus the distinct seen items that do (a gather of P scores instead of a scatter into [B, I]).
    `seen_distinct`: the caller guarantees each row's non-zero items are distinct (skips a sort).
    Ties count against the target; a NaN score counts as -inf, so a NaN target ranks last."""
    scores = finite_scores(scores)
    target_score = jnp.take_along_axis(scores, targets[:, None], axis=-1)  # [B, 1]
    at_least = jnp.sum(scores[:, 1:] >= target_score, axis=-1)  # items 1..I, the target included
    if not seen_distinct:  # histories may repeat items: keep the first of each run of a sorted row
        seen = jnp.sort(seen, axis=-1)
        seen = jnp.where(jnp.pad(seen[:, 1:] != seen[:, :-1], ((0, 0), (1, 0)), constant_values=True), seen, 0)
    counted = (seen != 0) & (seen != targets[:, None])  # the target is already subtracted once
    seen_beats = counted & (jnp.take_along_axis(scores, seen, axis=-1) >= target_score)
    return at_least - 1 - jnp.sum(seen_beats, axis=-1)


def candidate_scores(user: Float[Array, "B D"], rows: Float[Array, "B C D"]) -> Float[Array, "B C"]:
    """Each user's score of each of its candidates' rows, as a product and a sum over D: the same arithmetic
    at every candidate, so equal rows tie exactly (a batched matmul's rounding can depend on the candidate's
    position, and a tie would then go to the target at random)."""
    return jnp.sum(user[:, None, :].astype(jnp.float32) * rows.astype(jnp.float32), axis=-1)


def sampled_ranks(scores: Float[Array, "B C"]) -> Int[Array, " B"]:
    """Rank of candidate 0 (the target) among candidates 1..C-1 (the negatives); NaN counts as -inf."""
    scores = finite_scores(scores)
    return jnp.sum(scores[:, 1:] >= scores[:, :1], axis=-1)


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Fixed arrays for evaluating one split: inputs, targets, masked history, sampled candidates."""

    name: str
    users: np.ndarray  # [U] user indices
    inputs: np.ndarray  # [U, L] right-aligned histories
    targets: np.ndarray  # [U]
    seen: np.ndarray  # [U, P] each whole history's distinct items (not truncated to L), sorted, 0-padded right
    # [U] length-group key: the user's test history length + 1 (its whole sequence's length) clipped to L, so that
    # the valid and test sets group alike and share compiled shapes, and a model that shifts in a token of its own
    # (bert4rec's [mask]) drops the same oldest item as at L
    lengths: np.ndarray
    candidates: np.ndarray | None  # [U, 1 + negatives]: target first
    events: np.ndarray | None = None  # [U, L] event types aligned with inputs (0 on padding); None: no event column
    parts: tuple[int, ...] | None = None  # on a mesh: this process's users, per part (ProcessShare.users)
    capacity: int = 0  # on a mesh: users per part


def build_eval_set(
    split: LeaveOneOutSplit, name: str, max_len: int, config: EvalConfig, share: ProcessShare | None = None
) -> EvalSet:
    """The eval arrays of all eval users, or on a mesh (`share`) of this process's parts of them only."""
    users, parts, capacity = split.eval_users, None, 0
    longest = max(len(np.unique(h)) for h in split.history(users, name))  # one width on every process
    if share is not None:
        rows, parts = share.users(len(users))
        if not len(rows):
            raise ConfigError(f"{len(users)} eval users leave this process none: use fewer devices on mesh.data")
        users, capacity = users[rows], share.part_capacity(len(users))
    histories = split.history(users, name)
    targets = split.targets(users, name)
    seen = np.zeros((len(users), longest), np.int32)
    for row, h in enumerate(histories):
        distinct = np.unique(h)  # sorted: full_ranks subtracts each seen item once
        seen[row, : len(distinct)] = distinct
    candidates = None
    if config.sampled:
        rng = np.random.default_rng([config.seed, SPLIT_SEEDS[name]])
        # never a negative the user interacted with; drawn for every eval user (one random sequence)
        everything = [split.data.sequences[u] for u in split.eval_users]
        try:
            negatives = sample_unseen(everything, split.data.num_items, config.num_negatives, rng)
        except ValueError as e:
            raise ConfigError(
                f"eval.num_negatives={config.num_negatives} is more than some user can have ({e}); "
                "lower eval.num_negatives or set eval.sampled=false"
            ) from None
        if share is not None:
            negatives = negatives[rows]  # this process's users' rows
        candidates = np.concatenate([targets[:, None], negatives], axis=1)
    history_events = split.history_events(users, name)
    events = None if history_events is None else left_pad(history_events, max_len)
    lengths = np.minimum([len(split.data.sequences[u]) for u in users], max_len)
    inputs = left_pad(histories, max_len)
    return EvalSet(name, users, inputs, targets, seen, lengths, candidates, events, parts, capacity)


def length_groups(lengths: np.ndarray, max_len: int, batch_size: int) -> list[tuple[np.ndarray, int]]:
    """(rows, length) per group of eval users: each user in the shortest of `bucket_lengths(max_len)` that holds
    its history, shortest first; a group that saves fewer than MIN_SAVED_POSITIONS positions per pass (batches
    counted whole) joins the next longer one."""
    buckets = bucket_lengths(max_len)
    which = np.searchsorted(buckets, np.clip(lengths, 1, max_len))
    groups = [(np.flatnonzero(which == b), int(length)) for b, length in enumerate(buckets)]
    groups = [(rows, length) for rows, length in groups if len(rows)]

    def cost(users: int, length: int) -> int:
        return -(-users // batch_size) * batch_size * length

    merged, pending = [], np.zeros(0, np.int64)
    for (rows, length), (after, longer) in itertools.pairwise(groups):
        rows = np.concatenate([pending, rows])
        alone = cost(len(rows), length) + cost(len(after), longer)
        if alone + MIN_SAVED_POSITIONS <= cost(len(rows) + len(after), longer):
            merged.append((rows, length))
            pending = np.zeros(0, np.int64)
        else:
            pending = rows
    rows, length = groups[-1]
    return [*merged, (np.concatenate([pending, rows]), length)]


class Evaluator:
    """Jitted, user-batched scoring of a model (given as NNX graphdef + state) on fixed eval sets.

    On one device an eval set's arrays are copied to the device once, and one jitted call maps over its
    user batches (`lax.map`): each batch encodes its histories once for both protocols, so a pass is one
    dispatch and one copy of the ranks back. With `eval.item_chunk` or a mesh (`layout`), full ranking
    scans the items in chunks (bounded memory) and, on a mesh, per item shard (recattn_jax/parallel/topk.py).
    """

    def __init__(self, graphdef: nnx.GraphDef, config: EvalConfig, layout=None):
        self.config, self.layout = config, layout
        chunked = item_ranks(config.item_chunk, layout)
        self._device_sets: dict[int, tuple] = {}  # id(eval set) -> (eval set, [(group's device arrays, users)])

        def batch_ranks(state, batch):
            """(full ranks, sampled ranks or None) of one batch of eval arrays, encoding the histories once."""
            model = nnx.merge(graphdef, state)
            inputs, users, events = batch["inputs"], batch["users"], batch.get("events")
            targets, seen, candidates = batch["targets"], batch["seen"], batch.get("candidates")
            dot_product = model_kind(model).dot_product_scores
            if chunked is not None and dot_product:
                user = user_vectors(model, inputs, users, events)
                full = chunked(user, model.item_table(), targets, seen)
                if candidates is None:
                    return full, None
                return full, sampled_ranks(candidate_scores(user, model.item_table()[candidates]))
            scores = score_all(model, inputs, users, events)
            if layout is not None:
                scores = scores[:, : layout.num_items + 1]  # mesh-pad rows are not items
            full = full_ranks(scores, targets, seen, seen_distinct=True)
            if candidates is None:
                return full, None
            if dot_product:  # the candidates' scores are already in the full score matrix
                return full, sampled_ranks(jnp.take_along_axis(scores, candidates, axis=-1))
            return full, sampled_ranks(score_items(model, inputs, candidates, users, events))

        # on a mesh the ranks stay sharded over `data`: each process reads its own rows of them
        jit = jax.jit if layout is None else partial(jax.jit, out_shardings=layout.sharding("data"))
        self._batch_ranks = jit(batch_ranks)
        # the state rides in the scan's carry, not a closure: a model whose call mutates its own state (a
        # recurrent cell's RNG count) may only do so at the trace level of the loop body
        self._all_ranks = jax.jit(
            lambda state, batches: jax.lax.scan(lambda st, b: (st, batch_ranks(st, b)), state, batches)[1]
        )

    def _ranks(self, state, batch) -> tuple:
        """(full ranks, sampled ranks or None) of one batch of eval arrays (the mesh path)."""
        return self._batch_ranks(state, batch)

    def _on_device(self, eval_set: EvalSet) -> list[tuple[dict, int]]:
        """Per length group (`length_groups`; one group without eval.bucketing): the group's eval arrays as
        [batches, batch_size, ...] device arrays, histories cut to the group's length, and its user count.
        Built once per eval set."""
        cached = self._device_sets.get(id(eval_set))
        if cached is not None and cached[0] is eval_set:
            return cached[1]
        max_len = eval_set.inputs.shape[1]
        if self.config.bucketing:
            groups = length_groups(eval_set.lengths, max_len, self.config.batch_size)
        else:
            groups = [(np.arange(len(eval_set.users)), max_len)]
        on_device = []
        for users, length in groups:
            size = min(self.config.batch_size, len(users))
            batches = -(-len(users) // size)
            rows = users[np.arange(batches * size) % len(users)]  # the last batch wraps around; cut in evaluate
            arrays = eval_rows(eval_set, rows)
            for key in ("inputs", "events"):  # right-aligned: the newest `length` positions hold every history
                if key in arrays:
                    arrays[key] = arrays[key][:, max_len - length :]
            arrays = {k: v.reshape(batches, size, *v.shape[1:]) for k, v in arrays.items()}
            on_device.append((jax.device_put(arrays), len(users)))
        self._device_sets[id(eval_set)] = (eval_set, on_device)
        return on_device

    def evaluate(self, state, eval_set: EvalSet) -> dict[str, dict[str, float]]:
        if self.layout is not None:
            return self._evaluate_shares(state, eval_set)
        groups = self._on_device(eval_set)
        ranks = jax.device_get([self._all_ranks(state, arrays) for arrays, _ in groups])  # all dispatched first
        full = np.concatenate([f.reshape(-1)[:n] for (_, n), (f, _) in zip(groups, ranks, strict=True)])
        out = {"full": ranking_metrics(full, self.config.ks)}
        if ranks[0][1] is not None:
            sampled = np.concatenate([s.reshape(-1)[:n] for (_, n), (_, s) in zip(groups, ranks, strict=True)])
            out["sampled"] = ranking_metrics(sampled, self.config.ks)
        return out

    def _evaluate_shares(self, state, eval_set: EvalSet) -> dict[str, dict[str, float]]:
        """On a mesh: this process's parts of the users, metric sums and counts added over processes."""
        share, parts, capacity = self.layout.share, eval_set.parts, eval_set.capacity
        if parts is None:  # an eval set of all users: right only where one process holds every part
            if jax.process_count() > 1:
                raise ValueError("several processes: build the eval set with build_eval_set(..., layout.share)")
            parts, capacity = share.users(len(eval_set.users))[1], share.part_capacity(len(eval_set.users))
        sums = {}  # protocol -> [metric sums..., user count] of the users of the positions this process owns
        for rows, valid, owned in share.eval_batches(parts, capacity, self.config.batch_size):
            ranks = self._ranks(state, self.layout.place_batch(eval_rows(eval_set, rows)))
            for protocol, r in zip(("full", "sampled"), ranks, strict=True):
                if r is not None:
                    kept = local_rows(r)[valid & owned]
                    values = [v.sum() for v in user_metrics(kept, self.config.ks).values()] + [len(kept)]
                    sums[protocol] = sums.get(protocol, 0.0) + np.asarray(values, np.float64)
        names = [*user_metrics(np.zeros(1), self.config.ks)]
        out = {}
        for protocol, local in sums.items():
            total = sum_over_processes(local)
            out[protocol] = {name: float(value / total[-1]) for name, value in zip(names, total, strict=False)}
        return out


def eval_rows(eval_set: EvalSet, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of eval-set rows `rows` (indices into this process's users)."""
    batch = {
        "inputs": eval_set.inputs[rows],
        "targets": eval_set.targets[rows],
        "seen": eval_set.seen[rows],
        "users": eval_set.users[rows],
    }
    if eval_set.candidates is not None:
        batch["candidates"] = eval_set.candidates[rows]
    if eval_set.events is not None:
        batch["events"] = eval_set.events[rows]
    return batch
