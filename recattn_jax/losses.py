"""Next-item losses over the hidden states of a sequence model and its output item table.

Axis legend: B batch, L positions, D model dim, I items (index 0 = padding, never a candidate).
Every loss averages over the positions whose target is not padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

import kernels
from recattn_jax.errors import ConfigError


def full_cross_entropy(
    hidden: Float[Array, "B L D"], table: Float[Array, "I D"], targets: Int[Array, "B L"], rng: Array
) -> Float[Array, ""]:
    """Softmax cross-entropy over the whole catalogue (items 1..I; padding, row 0, is not an item).

    Through `kernels.linear_cross_entropy`: item chunks with a recomputing backward, never the [B, L, I]
    logits (on 2 CPU cores 1.5-2.6x faster than materialised logits, 1/19 of the memory)."""
    del rng
    # [B, L, D] -> [B*L, D]: positions are independent
    nll = kernels.linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), table, targets.reshape(-1))
    return masked_mean(nll.reshape(targets.shape), targets != 0)


def sample_negatives(
    rng: Array, targets: Int[Array, "B L"], num_items: int, count: int, tries: int = 4
) -> Int[Array, "B L K"]:
    """Uniform items in 1..I that are none of the row's positives (the user's items in the window).

    Rejection sampling with `tries` draws per negative; where every draw hits a positive (rare), the
    negative falls back to a uniform item other than that position's positive. Never padding.
    """
    draw_key, fallback_key = jax.random.split(rng)
    draws = jax.random.randint(draw_key, (*targets.shape, count * tries), 1, num_items + 1)
    row_items = jnp.sort(targets, axis=-1)  # [B, L] sorted for a binary-search membership test

    def in_row(sorted_row, candidates):  # [L], [L, K*tries]
        at = jnp.minimum(jnp.searchsorted(sorted_row, candidates), sorted_row.shape[0] - 1)
        return sorted_row[at] == candidates

    hit = jax.vmap(in_row)(row_items, draws)
    first_free = jnp.argsort(hit, axis=-1, stable=True)[..., :count]  # free draws first, in draw order
    chosen = jnp.take_along_axis(draws, first_free, axis=-1)
    still_hit = jnp.take_along_axis(hit, first_free, axis=-1)
    fallback = jax.random.randint(fallback_key, (*targets.shape, count), 1, num_items)  # 1..I-1
    fallback = fallback + (fallback >= targets[..., None])  # skip the positive
    return jnp.where(still_hit, fallback, chosen)


def binary_cross_entropy(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    rng: Array,
    count: int = 1,
) -> Float[Array, ""]:
    """SASRec's loss: -log sigmoid(s_pos) - sum over `count` sampled negatives of log(1 - sigmoid(s_neg)),
    i.e. gBCE with t = 0 (beta = 1)."""
    return _sigmoid_loss(hidden, table, targets, rng, count, beta=1.0)


def sampled_softmax(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    rng: Array,
    count: int = 100,
    logq_correction: bool = True,
) -> Float[Array, ""]:
    """Softmax over the positive and `count` negatives drawn from the batch's own targets.

    In-batch sampling draws items in proportion to their frequency among the batch's (non-padding)
    targets, q(i); the logQ correction (Jean et al. 2015, Yi et al. 2019) subtracts log(count * q(i))
    from every logit, positive included, so the sampled softmax estimates the full one without a
    popularity bias. A drawn negative equal to the positive is removed (its logit set to -inf).
    """
    flat = targets.reshape(-1)
    present = flat != 0
    # uniform over non-padding target slots = proportional to each item's frequency in the batch
    slot = jax.random.categorical(rng, jnp.where(present, 0.0, -jnp.inf), shape=(*targets.shape, count))
    negatives = flat[slot]  # [B, L, K]
    pos = jnp.einsum("bld,bld->bl", hidden, table[targets], preferred_element_type=jnp.float32)
    neg = jnp.einsum("bld,blkd->blk", hidden, table[negatives], preferred_element_type=jnp.float32)
    if logq_correction:
        freq = jnp.zeros(table.shape[0], jnp.float32).at[flat].add(present.astype(jnp.float32))
        log_q = jnp.log(jnp.maximum(freq, 1.0)) - jnp.log(jnp.maximum(jnp.sum(present), 1.0))
        pos = pos - (log_q[targets] + jnp.log(count))
        neg = neg - (log_q[negatives] + jnp.log(count))
    neg = jnp.where(negatives == targets[..., None], -jnp.inf, neg)  # accidental hits are not negatives
    logits = jnp.concatenate([pos[..., None], neg], axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - pos
    return masked_mean(nll, targets != 0)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's (Petrov & Macdonald 2023) positive exponent beta = alpha (t (1 - 1/alpha) + 1/alpha),
    alpha = negatives / (items - 1), the sampling rate of negatives."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def generalised_binary_cross_entropy(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    rng: Array,
    count: int = 1,
    t: float = 0.75,
) -> Float[Array, ""]:
    """gBCE: -log sigmoid(s_pos)^beta - sum over `count` uniform negatives of log(1 - sigmoid(s_neg)).

    Raising the positive probability to beta <= 1 counters the overconfidence that negative sampling
    causes; t = 0 gives beta = 1 (plain BCE), t = 1 gives beta = alpha (fully calibrated).
    """
    return _sigmoid_loss(hidden, table, targets, rng, count, beta=gbce_beta(count, table.shape[0] - 1, t))


def _sigmoid_loss(hidden, table, targets, rng, count: int, beta: float) -> Float[Array, ""]:
    """-beta log sigmoid(s_pos) - sum over `count` uniform negatives (outside the row's items) of
    log(1 - sigmoid(s_neg)), averaged over the positions with a target."""
    negatives = sample_negatives(rng, targets, table.shape[0] - 1, count)
    pos = jnp.einsum("bld,bld->bl", hidden, table[targets])
    neg = jnp.einsum("bld,blkd->blk", hidden, table[negatives])
    nll = -beta * jax.nn.log_sigmoid(pos) - jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)
    return masked_mean(nll, targets != 0)


def masked_mean(values: Float[Array, "..."], mask: Array) -> Float[Array, ""]:
    """Mean of `values` where `mask` (0 where nothing is masked in)."""
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return total / jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)


LOSSES = ("ce", "bce", "sampled_softmax", "gbce")
# losses that are a mean over independent positions: computed on the batch's target positions only
# (`positions`, data/batches.py: target_positions). BCE and gBCE draw each row's negatives outside that
# row's items, so they keep the [B, L] layout and ignore `positions`.
PACKED_LOSSES = ("ce", "sampled_softmax")


def _at_positions(loss):
    """`loss` taking `positions` [P] (flat indices into [B, L]): scores only those positions, so padding
    positions are never scored against the catalogue."""

    def packed(hidden, table, targets, rng, positions=None):
        if positions is not None:
            hidden = hidden.reshape(-1, hidden.shape[-1])[positions][None]  # [B, L, D] -> [1, P, D]
            targets = targets.reshape(-1)[positions][None]  # [B, L] -> [1, P]; pad entries have target 0
        return loss(hidden, table, targets, rng)

    return packed


def next_item_loss(name: str, num_negatives: int = 1, *, gbce_t: float = 0.75, logq_correction: bool = True):
    """The loss function `loss.name` as f(hidden, table, targets, rng, positions=None) -> scalar."""
    if name == "ce":
        return _at_positions(full_cross_entropy)
    if name not in LOSSES:
        raise ConfigError(f"loss.name={name!r}; choose one of {list(LOSSES)}")
    if num_negatives < 1:
        raise ConfigError(f"loss.num_negatives={num_negatives}: {name} needs at least one negative")
    if name == "bce":
        return lambda hidden, table, targets, rng, positions=None: binary_cross_entropy(
            hidden, table, targets, rng, num_negatives
        )
    if name == "sampled_softmax":
        return _at_positions(
            lambda hidden, table, targets, rng: sampled_softmax(
                hidden, table, targets, rng, num_negatives, logq_correction
            )
        )
    if not 0.0 <= gbce_t <= 1.0:
        raise ConfigError(f"loss.gbce_t={gbce_t} must be in [0, 1]")
    return lambda hidden, table, targets, rng, positions=None: generalised_binary_cross_entropy(
        hidden, table, targets, rng, num_negatives, gbce_t
    )
