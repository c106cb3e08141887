"""Next-item losses over the hidden states of a sequence model and its output item table.

Axis legend: B batch, L positions, D model dim, I items (index 0 = padding, never a candidate).
Every loss averages over the positions whose target is not padding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

import kernels
from kernels.linear_cross_entropy import DEFAULT_CHUNK
from kernels.mesh_axes import vary_like
from recattn_jax.errors import ConfigError


def full_cross_entropy(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    rng: Array,
    temperature: float = 1.0,
) -> Float[Array, ""]:
    """Softmax cross-entropy over the whole catalogue (items 1..I; padding, row 0, is not an item), of the
    logits / `temperature`.

    Through `kernels.linear_cross_entropy`: item chunks with a recomputing backward, never the [B, L, I]
    logits (on 2 CPU cores 1.5-2.6x faster than materialised logits, 1/19 of the memory)."""
    del rng
    if temperature != 1.0:
        hidden = hidden / temperature  # (hidden / T) . item = logit / T
    # [B, L, D] -> [B*L, D]: positions are independent
    nll = kernels.linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), table, targets.reshape(-1))
    return masked_mean(nll.reshape(targets.shape), targets != 0)


def unseen_cross_entropy(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    seen: Int[Array, "B L"],
    temperature: float = 1.0,
    positions: Int[Array, " P"] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Float[Array, ""]:
    """Full softmax CE whose negatives leave out the row's own earlier items, as seen-filtered full ranking
    does: position t's softmax runs over the items outside seen[b, :t+1] (the row's inputs up to t; 0 is
    padding), plus its target, which always stays. `positions`: score only these flat positions of [B, L].

    Exact, unlike subtracting the seen items' mass from the whole catalogue's log-sum-exp, which fp32
    cancellation ruins once seen items dominate the softmax (low temperatures)."""
    first_slot = first_slots(seen, table.shape[0], chunk)
    return _slot_masked_cross_entropy(hidden, table, targets, first_slot, temperature, positions, chunk)


def first_slots(seen: Int[Array, "B L"], rows: int, chunk: int, offset: int | Array = 0) -> Int[Array, "B C"]:
    """first_slot[b, r]: the first slot of item offset + r among row b's items `seen` (0 is padding, never seen),
    L where absent, for the `rows` items from `offset` (one table, or one shard of it), rounded up to whole
    chunks (C)."""
    b, length = seen.shape
    width = _chunked(rows, chunk)
    local = seen - offset
    on_table = (seen != 0) & (local >= 0) & (local < rows)
    slots = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), seen.shape)
    first_slot = jnp.full((b, width), length, jnp.int32)
    # items off this table go to column `width`, which the scatter drops
    return first_slot.at[jnp.arange(b)[:, None], jnp.where(on_table, local, width)].min(slots, mode="drop")


def _chunked(items: int, chunk: int) -> int:
    """`items` rounded up to whole chunks."""
    return -(-items // chunk) * chunk


def _slot_masked_cross_entropy(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    first_slot: Int[Array, "B C"],
    temperature: float,
    positions: Int[Array, " P"] | None,
    chunk: int,
) -> Float[Array, ""]:
    """Softmax CE of logits / `temperature` whose candidates at slot t of row b are the items i (1..I-1) with
    first_slot[b, i] > t, plus the position's target, which always stays. `first_slot` spans the table rounded
    up to whole chunks (C). `positions`: score only these flat positions of [B, L].

    Never [P, I] logits: a scan over item chunks of `chunk` rows with an online log-sum-exp, each step
    rematerialised in the backward (O(P x chunk) memory), as `kernels.linear_cross_entropy`'s reference;
    a position's candidates come from its row's [C] slots, not a [P, I] mask."""
    if temperature != 1.0:
        hidden = hidden / temperature
    b, length, dim = hidden.shape
    row_of, slot_of = jnp.divmod(jnp.arange(b * length), length)  # each flat position's row and slot
    flat_hidden, flat_targets = hidden.reshape(-1, dim), targets.reshape(-1)  # [B, L, D] -> [B*L, D]
    if positions is not None:
        flat_hidden, flat_targets = flat_hidden[positions], flat_targets[positions]
        row_of, slot_of = row_of[positions], slot_of[positions]
    mask = flat_targets != 0
    running_max, running_sum = slot_masked_sums(
        flat_hidden, table, flat_targets, first_slot, row_of, slot_of, chunk, end=table.shape[0]
    )
    lse = running_max + jnp.log(jnp.where(mask, running_sum, 1.0))  # the target is a candidate: sum > 0
    target_rows = table[flat_targets].astype(jnp.float32)
    target_logit = jnp.einsum("pd,pd->p", flat_hidden.astype(jnp.float32), target_rows)
    return masked_mean(jnp.where(mask, lse - target_logit, 0.0), mask)


def slot_masked_sums(
    flat_hidden: Float[Array, "P D"],
    table: Float[Array, "R D"],
    flat_targets: Int[Array, " P"],
    first_slot: Int[Array, "B C"],
    row_of: Int[Array, " P"],
    slot_of: Int[Array, " P"],
    chunk: int,
    *,
    end: int,
    offset: int | Array = 0,
) -> tuple[Float[Array, " P"], Float[Array, " P"]]:
    """(max, sum of exp(logit - max)) per position over the candidates among `table`'s rows, whose global ids
    are offset + row: ids in [1, end), less the items i of the position's row b with first_slot[b, i - offset]
    <= its slot, but its target, which always stays. `first_slot` spans the rows rounded up to whole chunks (C).
    A scan over chunks of `chunk` rows, each rematerialised in the backward; max is -inf and sum 0 where a
    position has no candidate (a shard of padding only). Inside `shard_map` (a traced `offset` from the shard's
    index) the scan's carry varies over the mesh axes its operands do."""
    b = first_slot.shape[0]
    rows, dim = table.shape
    num_chunks = first_slot.shape[1] // chunk

    def step(carry, xs):
        running_max, running_sum = carry
        table_chunk, slot_chunk, first_id = xs  # [K, D], [B, K]
        ids = offset + first_id + jnp.arange(chunk)
        excluded = (slot_chunk[row_of] <= slot_of[:, None]) & (ids[None] != flat_targets[:, None])  # [P, K]
        candidate = (ids >= 1) & (ids < end) & (first_id + jnp.arange(chunk) < rows) & ~excluded
        logits = jnp.einsum("pd,kd->pk", flat_hidden, table_chunk, preferred_element_type=jnp.float32)
        logits = jnp.where(candidate, logits, -jnp.inf)
        new_max = jax.lax.stop_gradient(jnp.maximum(running_max, jnp.max(logits, axis=-1)))
        shift = jnp.where(jnp.isneginf(new_max), 0.0, new_max)  # no candidate yet: no -inf - -inf
        running_sum = running_sum * jnp.exp(running_max - shift) + jnp.sum(jnp.exp(logits - shift[:, None]), -1)
        return (new_max, running_sum), None

    padded = jnp.pad(table, ((0, num_chunks * chunk - rows), (0, 0))).reshape(num_chunks, chunk, dim)
    slots = first_slot.reshape(b, num_chunks, chunk).transpose(1, 0, 2)  # [B, C*K] -> [C, B, K]
    operands = (flat_hidden, table, flat_targets, first_slot, row_of, slot_of, jnp.asarray(offset))
    init = (  # typed as varying like the operands inside shard_map; a no-op outside it
        vary_like(jnp.full(flat_targets.shape, -jnp.inf, jnp.float32), *operands),
        vary_like(jnp.zeros(flat_targets.shape, jnp.float32), *operands),
    )
    xs = (padded, slots, jnp.arange(num_chunks) * chunk)
    (running_max, running_sum), _ = jax.lax.scan(jax.checkpoint(step), init, xs)
    return running_max, running_sum


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


def in_batch_slots(rng: Array, present: Bool[Array, " N"], shape: tuple[int, ...]) -> Int[Array, "..."]:
    """`shape` indices drawn uniformly, with replacement, from the slots where `present` is true.

    Memory is O(N + prod(shape)): `jax.random.categorical` over the N slots would draw Gumbel noise of
    shape (*shape, N), which for a batch's B*L targets with K negatives each is B*L*K*B*L floats (at batch
    128, max_len 200, K=100 on ML-1M a 410 GB allocation was asked for). With no slot present every index is 0.
    """
    first = jnp.argsort(~present, stable=True)  # the present slots first, in order
    count = jnp.maximum(jnp.sum(present), 1)
    return first[jax.random.randint(rng, shape, 0, count)]


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
    negatives = flat[in_batch_slots(rng, present, (*targets.shape, count))]  # [B, L, K]
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


def row_negatives(
    rng: Array, row_items: Int[Array, "B N"], num_items: int, count: int
) -> tuple[Int[Array, "B K"], Bool[Array, "B K"]]:
    """`count` distinct items per row, drawn uniformly (without replacement) from the items 1..I that are not
    among `row_items` (the row's inputs and targets; 0 is padding), and whether each draw is such an item.

    The row's smallest-`count` of uniform keys, its own items keyed last: a uniform subset of its free items.
    A draw is one of the row's own items (free false) only where the row has fewer than `count` free items,
    which `check_sampler_fits` refuses before a run. O(B x I) keys per step: made for catalogues of thousands to
    tens of thousands of items, not millions."""
    b = row_items.shape[0]
    rows = jnp.arange(b)[:, None]
    taken = jnp.zeros((b, num_items + 1), bool).at[rows, row_items].set(True).at[:, 0].set(True)
    keys = jnp.where(taken, 2.0, jax.random.uniform(rng, taken.shape))  # uniform in [0, 1); taken items last
    _, negatives = jax.lax.top_k(-keys, count)
    return negatives, ~taken[rows, negatives]


def uniform_sampled_softmax(
    hidden: Float[Array, "B L D"],
    table: Float[Array, "I D"],
    targets: Int[Array, "B L"],
    seen: Int[Array, "B L"],
    rng: Array,
    count: int,
    positions: Int[Array, " P"] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Float[Array, ""]:
    """Softmax over the positive and `count` negatives that every position of a row shares, drawn uniformly
    without replacement from the items outside the row (its inputs `seen` and its targets), as the sampled
    "SASRec+ 3000" of Klenitskiy & Vasilev (RecSys'23) draws them once per row. A uniform sampler needs no
    logQ correction (log q is the same for every item and cancels in the softmax). `positions`: score only
    these flat positions of [B, L].

    The row's drawn items are its candidates at every slot of the chunked, masked CE of `unseen_cross_entropy`:
    [positions, chunk] tiles of one shared table, never [B, L, count] logits (SASRec+ 3000's epoch on 2 CPU cores:
    1.16x full CE's in this form, 1.60x with the logits in memory; benchmarks/RESULTS.md)."""
    b, length, _ = hidden.shape
    negatives, free = row_negatives(rng, jnp.concatenate([seen, targets], axis=1), table.shape[0] - 1, count)
    drawn = jnp.zeros((b, _chunked(table.shape[0], chunk)), bool).at[jnp.arange(b)[:, None], negatives].set(free)
    first_slot = jnp.where(drawn, length, 0).astype(jnp.int32)  # drawn: a candidate at every slot; others never
    return _slot_masked_cross_entropy(hidden, table, targets, first_slot, 1.0, positions, chunk)


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
# sampled_softmax's negatives: in_batch (the batch's own targets, with the logQ correction) | uniform (per row,
# outside the row's items, without replacement: Klenitskiy & Vasilev's SASRec+ 3000)
SAMPLERS = ("in_batch", "uniform")
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


def with_row_items(lever: str, undo: str, loss_of_rows):
    """`loss_of_rows(hidden, table, targets, rng, positions, seen)` as f(hidden, table, targets, rng,
    positions=None, seen=None), where `seen` is the rows' items (the step's inputs, which run_epoch passes
    where `passes_row_items`); a call without them, from a model with its own training loss, is refused."""

    def loss(hidden, table, targets, rng, positions=None, seen=None):
        if seen is None:
            raise ConfigError(
                f"{lever} needs each row's items, which only SASRec-style models' training steps pass (a model "
                f"with its own training loss does not); set {undo}"
            )
        return loss_of_rows(hidden, table, targets, rng, positions, seen)

    return loss


def passes_row_items(config) -> bool:
    """Whether the loss of `config` (a LossConfig) needs each row's inputs as `seen=` (see train/epoch.py)."""
    return config.exclude_seen or (config.name == "sampled_softmax" and config.sampler == "uniform")


def next_item_loss(
    name: str,
    num_negatives: int = 1,
    *,
    gbce_t: float = 0.75,
    logq_correction: bool = True,
    temperature: float = 1.0,
    exclude_seen: bool = False,
    sampler: str = "in_batch",
):
    """The loss function `loss.name` as f(hidden, table, targets, rng, positions=None) -> scalar (and
    `seen=` too with `exclude_seen` or the uniform sampler). `temperature` and `exclude_seen` are full CE's
    (loss.name=ce) only, `sampler` sampled_softmax's."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"loss.sampler={sampler!r}; choose one of {list(SAMPLERS)}")
    if sampler != "in_batch" and name != "sampled_softmax":
        raise ConfigError(f"loss.sampler={sampler} applies to loss.name=sampled_softmax only, not {name}")
    if name == "ce":
        if exclude_seen:  # CE over the items outside each position's earlier items
            return with_row_items(
                "loss.exclude_seen=true",
                "loss.exclude_seen=false",
                lambda hidden, table, targets, rng, positions, seen: unseen_cross_entropy(
                    hidden, table, targets, seen, temperature, positions
                ),
            )
        return _at_positions(functools.partial(full_cross_entropy, temperature=temperature))
    if name not in LOSSES:
        raise ConfigError(f"loss.name={name!r}; choose one of {list(LOSSES)}")
    if temperature != 1.0 or exclude_seen:
        raise ConfigError(f"loss.temperature and loss.exclude_seen apply to loss.name=ce only, not {name}")
    if num_negatives < 1:
        raise ConfigError(f"loss.num_negatives={num_negatives}: {name} needs at least one negative")
    if name == "bce":
        return lambda hidden, table, targets, rng, positions=None: binary_cross_entropy(
            hidden, table, targets, rng, num_negatives
        )
    if name == "sampled_softmax":
        if sampler == "uniform":
            return with_row_items(
                "loss.sampler=uniform",
                "loss.sampler=in_batch",
                lambda hidden, table, targets, rng, positions, seen: uniform_sampled_softmax(
                    hidden, table, targets, seen, rng, num_negatives, positions
                ),
            )
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
