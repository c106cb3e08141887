"""Next-item losses over the hidden states of a sequence model and its output item table.

Axis legend: B batch, L positions, D model dim, I items (index 0 = padding, never a candidate).
Every loss averages over the positions whose target is not padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from recattn_jax.errors import ConfigError


def full_cross_entropy(
    hidden: Float[Array, "B L D"], table: Float[Array, "I D"], targets: Int[Array, "B L"], rng: Array
) -> Float[Array, ""]:
    """Softmax cross-entropy over the whole catalogue."""
    del rng
    logits = jnp.einsum("bld,id->bli", hidden, table, preferred_element_type=jnp.float32)
    logits = logits.at[..., 0].set(-jnp.inf)  # padding is not an item
    safe = jnp.where(targets == 0, 1, targets)  # padding positions are masked out below; avoid -inf - -inf
    target_logit = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - target_logit
    return _masked_mean(nll, targets != 0)


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
    """SASRec's loss: -log sigmoid(s_pos) - sum over `count` sampled negatives of log(1 - sigmoid(s_neg))."""
    negatives = sample_negatives(rng, targets, table.shape[0] - 1, count)
    pos = jnp.einsum("bld,bld->bl", hidden, table[targets])
    neg = jnp.einsum("bld,blkd->blk", hidden, table[negatives])
    nll = -jax.nn.log_sigmoid(pos) - jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)
    return _masked_mean(nll, targets != 0)


def _masked_mean(values: Float[Array, "B L"], mask: Array) -> Float[Array, ""]:
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return total / jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)


def next_item_loss(name: str, num_negatives: int = 1):
    """The loss function `loss.name` as f(hidden, table, targets, rng) -> scalar."""
    if name == "ce":
        return full_cross_entropy
    if name == "bce":
        if num_negatives < 1:
            raise ConfigError(f"loss.num_negatives={num_negatives}: bce needs at least one negative")
        return lambda hidden, table, targets, rng: binary_cross_entropy(hidden, table, targets, rng, num_negatives)
    raise ConfigError(f"loss.name={name!r}; choose one of ['ce', 'bce']")
