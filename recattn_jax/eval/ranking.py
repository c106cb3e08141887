"""Full-ranking and sampled evaluation of next-item prediction, batched over users.

Full ranking: the target against every item the user has not interacted with before it
(the history is masked, padding too). Sampled (SASRec paper): the target against `num_negatives`
items the user never interacted with, drawn once from a fixed seed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from recattn_jax.config import EvalConfig
from recattn_jax.data.batches import left_pad, sample_unseen
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import ConfigError
from recattn_jax.eval.metrics import ranking_metrics
from recattn_jax.models.scoring import score_all, score_items, user_vectors
from recattn_jax.parallel.mesh import to_host
from recattn_jax.parallel.topk import item_ranks

SPLIT_SEEDS = {"valid": 1, "test": 2}  # valid and test draw different negatives from the same eval.seed


def full_ranks(scores: Float[Array, "B I"], targets: Int[Array, " B"], seen: Int[Array, "B P"]) -> Int[Array, " B"]:
    """0-based rank of each target among the items outside `seen` (0-padded) and padding."""
    rows = jnp.arange(scores.shape[0])
    target_score = scores[rows, targets]
    competitors = scores.at[rows[:, None], seen].set(-jnp.inf).at[:, 0].set(-jnp.inf)  # seen items, padding
    competitors = competitors.at[rows, targets].set(-jnp.inf)  # the target does not compete with itself
    return jnp.sum(competitors >= target_score[:, None], axis=-1)


def sampled_ranks(scores: Float[Array, "B C"]) -> Int[Array, " B"]:
    """Rank of candidate 0 (the target) among candidates 1..C-1 (the negatives)."""
    return jnp.sum(scores[:, 1:] >= scores[:, :1], axis=-1)


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Fixed arrays for evaluating one split: inputs, targets, masked history, sampled candidates."""

    name: str
    users: np.ndarray  # [U] user indices
    inputs: np.ndarray  # [U, L] right-aligned histories
    targets: np.ndarray  # [U]
    seen: np.ndarray  # [U, P] whole histories (not truncated to L), 0-padded on the right
    candidates: np.ndarray | None  # [U, 1 + negatives]: target first


def build_eval_set(split: LeaveOneOutSplit, name: str, max_len: int, config: EvalConfig) -> EvalSet:
    users = split.eval_users
    histories = split.history(users, name)
    targets = split.targets(users, name)
    longest = max(len(h) for h in histories)
    seen = np.zeros((len(users), longest), np.int32)
    for row, h in enumerate(histories):
        seen[row, : len(h)] = h
    candidates = None
    if config.sampled:
        rng = np.random.default_rng([config.seed, SPLIT_SEEDS[name]])
        everything = [split.data.sequences[u] for u in users]  # never a negative the user interacted with
        try:
            negatives = sample_unseen(everything, split.data.num_items, config.num_negatives, rng)
        except ValueError as e:
            raise ConfigError(
                f"eval.num_negatives={config.num_negatives} is more than some user can have ({e}); "
                "lower eval.num_negatives or set eval.sampled=false"
            ) from None
        candidates = np.concatenate([targets[:, None], negatives], axis=1)
    return EvalSet(name, users, left_pad(histories, max_len), targets, seen, candidates)


class Evaluator:
    """Jitted, user-batched scoring of a model (given as NNX graphdef + state) on fixed eval sets.

    With `eval.item_chunk` or a mesh (`layout`), full ranking scans the items in chunks (bounded
    memory) and, on a mesh, per item shard (recattn_jax/parallel/topk.py); otherwise it scores all items at once.
    """

    def __init__(self, graphdef: nnx.GraphDef, config: EvalConfig, layout=None):
        self.config, self.layout = config, layout
        chunked = item_ranks(config.item_chunk, layout)

        @jax.jit
        def full(state, inputs, targets, seen, users):
            model = nnx.merge(graphdef, state)
            if chunked is not None and not hasattr(model, "score_all"):
                return chunked(user_vectors(model, inputs, users), model.item_table(), targets, seen)
            scores = score_all(model, inputs, users)
            if layout is not None:
                scores = scores[:, : layout.num_items + 1]  # mesh-pad rows are not items
            return full_ranks(scores, targets, seen)

        @jax.jit
        def sampled(state, inputs, candidates, users):
            model = nnx.merge(graphdef, state)
            return sampled_ranks(score_items(model, inputs, candidates, users))

        self._full, self._sampled = full, sampled

    def evaluate(self, state, eval_set: EvalSet) -> dict[str, dict[str, float]]:
        full, sampled = [], []
        size = self.config.batch_size
        place = self.layout.place_batch if self.layout is not None else lambda arrays: arrays
        host = to_host if self.layout is not None else np.asarray
        for start in range(0, len(eval_set.users), size):
            # pad the last batch to the full size so every batch reuses one compiled program
            rows = np.arange(start, start + size) % len(eval_set.users)
            n = min(size, len(eval_set.users) - start)
            batch = place(
                {
                    "inputs": eval_set.inputs[rows],
                    "targets": eval_set.targets[rows],
                    "seen": eval_set.seen[rows],
                    "users": eval_set.users[rows],
                }
                | ({} if eval_set.candidates is None else {"candidates": eval_set.candidates[rows]})
            )
            full.append(host(self._full(state, batch["inputs"], batch["targets"], batch["seen"], batch["users"]))[:n])
            if eval_set.candidates is not None:
                sampled.append(host(self._sampled(state, batch["inputs"], batch["candidates"], batch["users"]))[:n])
        out = {"full": ranking_metrics(np.concatenate(full), self.config.ks)}
        if sampled:
            out["sampled"] = ranking_metrics(np.concatenate(sampled), self.config.ks)
        return out
