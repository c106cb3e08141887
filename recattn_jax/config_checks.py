"""Every config value checked before any data is read or any file written: one `ConfigError` naming the key.

`check_config` runs first in `train_and_evaluate`; a value that passes here can still be refused later
only where it depends on the data (e.g. more negatives than a user has unseen items).
"""

from __future__ import annotations

import math

from recattn_jax.config import SELECTION_K, SELECTION_METRIC, Config, EvalConfig
from recattn_jax.errors import ConfigError

OPTIMIZERS = ("adam", "adamw")
LAYER_NORMS = ("sasrec", "pre")
DATA_SOURCES = ("synthetic", "sasrec_txt", "csv")


def check_config(config: Config) -> None:
    """Raise a one-line ConfigError for the first impossible value of `config`."""
    _check_ranges(config)
    _check_choices(config)
    _check_data_columns(config)
    _check_backend_name(config.kernel.backend)
    check_accuracy_levers(config)


def _at_least(key: str, value, low, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} must be an integer")
    if value < low:
        raise ConfigError(f"{key}={value} must be at least {low}")


def _real(key: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    """`value` finite and within [low, high] (open at an end when asked)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a finite number")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"{key}={value} must lie in {interval}")


def _check_ranges(config: Config) -> None:
    m, t, e = config.model, config.train, config.eval
    for key, value in (
        ("model.max_len", m.max_len),
        ("model.hidden", m.hidden),
        ("model.blocks", m.blocks),
        ("model.heads", m.heads),
        ("model.candidate_chunk", m.candidate_chunk),
        ("model.train_negatives", m.train_negatives),
        ("train.epochs", t.epochs),
        ("train.batch_size", t.batch_size),
        ("train.eval_every", t.eval_every),
        ("train.log_every_steps", t.log_every_steps),
        ("eval.batch_size", e.batch_size),
        ("mesh.model", config.mesh.model),
    ):
        _at_least(key, value, 1)
    _at_least("train.max_steps", t.max_steps, 1, optional=True)
    _at_least("mesh.data", config.mesh.data, 1, optional=True)
    for key, value in (
        ("seed", config.seed),  # numpy's generators take no negative seed
        ("eval.seed", e.seed),
        ("data.synthetic.seed", config.data.synthetic.seed),
        ("train.patience", t.patience),
        ("train.ckpt_every_steps", t.ckpt_every_steps),
        ("data.min_user_interactions", config.data.min_user_interactions),
        ("data.min_item_interactions", config.data.min_item_interactions),
    ):
        _at_least(key, value, 0)
    _at_least("train.stop_after_steps", t.stop_after_steps, 0, optional=True)
    _at_least("eval.item_chunk", e.item_chunk, 0, optional=True)
    if m.hidden % m.heads:
        raise ConfigError(f"model.hidden={m.hidden} is not divisible by model.heads={m.heads}")
    _real("model.dropout", m.dropout, 0.0, 1.0, high_open=True)
    if m.name == "bert4rec":
        _real("model.mask_prob", m.mask_prob, 0.0, 1.0, low_open=True, high_open=True)
    _real("train.lr", t.lr, 0.0, math.inf, low_open=True, high_open=True)
    _real("train.beta1", t.beta1, 0.0, 1.0, high_open=True)
    _real("train.beta2", t.beta2, 0.0, 1.0, high_open=True)
    _real("train.weight_decay", t.weight_decay, 0.0, math.inf, high_open=True)
    _real("loss.gbce_t", config.loss.gbce_t, 0.0, 1.0)
    if config.loss.name != "ce":  # full CE samples no negative
        _at_least("loss.num_negatives", config.loss.num_negatives, 1)
    if not e.ks:
        raise ConfigError(f"eval.ks is empty; it must include {SELECTION_K} (model selection uses {SELECTION_METRIC})")
    for k in e.ks:
        _at_least("eval.ks", k, 1)
    if SELECTION_K not in e.ks:
        raise ConfigError(
            f"eval.ks={list(e.ks)} must include {SELECTION_K}: model selection and early stopping use "
            f"valid {SELECTION_METRIC}"
        )
    if e.sampled:
        if e.num_negatives < 1:
            raise ConfigError(
                f"eval.num_negatives={e.num_negatives} must be at least 1 (with no negative every sampled "
                "metric is 1.0); set eval.sampled=false to skip the sampled protocol"
            )
    d = config.distributed
    _at_least("distributed.num_processes", d.num_processes, 1, optional=True)
    _at_least("distributed.process_id", d.process_id, 0, optional=True)
    if d.num_processes is not None and d.process_id is not None and d.process_id >= d.num_processes:
        raise ConfigError(
            f"distributed.process_id={d.process_id} must be below distributed.num_processes={d.num_processes}"
        )


def _check_choices(config: Config) -> None:
    from recattn_jax.features.load import ITEM_FEATURES
    from recattn_jax.losses import LOSSES
    from recattn_jax.models import MODELS

    for key, value, choices in (
        ("data.name", config.data.name, DATA_SOURCES),
        ("model.name", config.model.name, tuple(sorted(MODELS))),
        ("model.layer_norm", config.model.layer_norm, LAYER_NORMS),
        ("model.item_features", config.model.item_features, ITEM_FEATURES),
        ("loss.name", config.loss.name, LOSSES),
        ("train.optimizer", config.train.optimizer, OPTIMIZERS),
    ):
        if value not in choices:
            raise ConfigError(f"{key}={value!r}; choose one of {list(choices)}")
    if config.data.name != "synthetic" and not config.data.path:
        raise ConfigError(f"data={config.data.name} needs data.path=FILE")


def _check_data_columns(config: Config) -> None:
    """A table's user, item, time and event columns are four different columns (the ones in use)."""
    from recattn_jax.data.readers import column_clash

    d = config.data
    if d.name != "csv":  # sasrec_txt and synthetic have no columns
        return
    clash = column_clash(user_col=d.user_col, item_col=d.item_col, time_col=d.time_col, event_col=d.event_col)
    if clash is not None:
        first, second = clash
        raise ConfigError(
            f"data.{second}={getattr(d, second)!r} names the same column as data.{first}; each of data.user_col, "
            "data.item_col, data.time_col and data.event_col names a column of its own"
        )


def _check_backend_name(backend: str) -> None:
    from kernels.dispatch import parse_backend

    try:
        parse_backend(backend)
    except ValueError as e:
        raise ConfigError(f"kernel.backend={backend!r}: {e}") from None


def check_backend(backend: str) -> None:
    """The attention backend can run on this machine (`triton` needs a CUDA GPU). It asks JAX for its
    platform, so call it after `jax.distributed.initialize` (which must come before any JAX backend use)."""
    from kernels.dispatch import resolve_backend

    try:
        resolve_backend(backend)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"kernel.backend={backend!r}: {e}") from None


def check_negatives_fit(config: EvalConfig, split) -> None:
    """The sampled protocol's negatives fit every eval user's unseen items; the error names the user's id."""
    if not config.sampled:
        return
    import numpy as np

    num_items, wanted = split.data.num_items, config.num_negatives
    unseen = np.asarray([num_items - len(np.unique(split.data.sequences[u])) for u in split.eval_users])
    if len(unseen) and unseen.min() < wanted:
        row = int(np.argmin(unseen))
        user = split.data.user_ids[split.eval_users[row]]
        raise ConfigError(
            f"eval.num_negatives={wanted} is more than user {user} can have ({unseen[row]} unseen items of "
            f"{num_items}); lower eval.num_negatives or set eval.sampled=false"
        )


def check_sampler_fits(config: Config, split) -> None:
    """The uniform sampler's negatives fit every training row: a row (a window of at most model.max_len + 1
    items of a user's training history) leaves at least num_items minus its length items to draw from. gBCE's
    negatives are at most num_items - 1: its calibration (beta, from the sampling rate negatives / (items - 1))
    is defined for a rate of at most 1."""
    if config.loss.name == "gbce" and config.loss.num_negatives > split.data.num_items - 1:
        raise ConfigError(
            f"loss.num_negatives={config.loss.num_negatives} with loss=gbce: more than the {split.data.num_items - 1} "
            "items other than a positive, a sampling rate above 1, for which gBCE's beta is not defined; lower "
            f"loss.num_negatives to at most {split.data.num_items - 1}"
        )
    if config.loss.name != "sampled_softmax" or config.loss.sampler != "uniform":
        return
    longest = max((len(s) for s in split.train_sequences), default=0)
    row = min(longest, config.model.max_len + 1)
    free = split.data.num_items - row
    if config.loss.num_negatives > free:
        raise ConfigError(
            f"loss.num_negatives={config.loss.num_negatives} with loss.sampler=uniform: a training row holds up "
            f"to {row} items (the longest training history, {longest}, or model.max_len + 1), which leaves "
            f"{free} of the {split.data.num_items} items to draw; lower loss.num_negatives to at most {free}"
        )


# model keys only SASRec reads: any other model must leave them at their defaults
SASREC_LEVERS = ("ffn", "ffn_mult", "attn_dropout", "residual", "tie_output", "normalize", "positions", "init")


def check_accuracy_levers(config: Config) -> None:
    """The options aimed at full-ranking accuracy (issue 11): optimizer schedule and clipping, full CE's
    temperature and seen-item exclusion, SASRec's feed-forward and its width, residuals, output table, cosine
    scores, positions and init."""
    from recattn_jax.layers.embeddings import POSITIONS
    from recattn_jax.layers.transformer import ATTENTION_DROPOUTS, FEED_FORWARDS, RESIDUALS
    from recattn_jax.losses import SAMPLERS, passes_row_items
    from recattn_jax.models import KINDS, ModelKind
    from recattn_jax.models.sasrec import INITS
    from recattn_jax.train.lr_schedule import LR_SCHEDULES

    t = config.train
    if t.grad_clip is not None:
        _real("train.grad_clip", t.grad_clip, 0.0, math.inf, low_open=True, high_open=True)
    _at_least("train.warmup_steps", t.warmup_steps, 0)
    _real("train.ema_decay", t.ema_decay, 0.0, 1.0, high_open=True)
    if t.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule={t.lr_schedule!r}; choose one of {list(LR_SCHEDULES)}")
    loss = config.loss
    _real("loss.temperature", loss.temperature, 0.0, math.inf, low_open=True, high_open=True)
    if loss.name != "ce" and (loss.temperature != 1.0 or loss.exclude_seen):
        raise ConfigError(f"loss.temperature and loss.exclude_seen apply to loss.name=ce only, not {loss.name}")
    if loss.sampler not in SAMPLERS:
        raise ConfigError(f"loss.sampler={loss.sampler!r}; choose one of {list(SAMPLERS)}")
    if loss.sampler != "in_batch" and loss.name != "sampled_softmax":
        raise ConfigError(f"loss.sampler={loss.sampler} applies to loss.name=sampled_softmax only, not {loss.name}")
    if passes_row_items(loss) and KINDS.get(config.model.name) not in (None, ModelKind.DOT_PRODUCT):
        lever = "loss.exclude_seen=true" if loss.exclude_seen else f"loss.sampler={loss.sampler}"
        next_item = sorted(name for name, kind in KINDS.items() if kind is ModelKind.DOT_PRODUCT)
        raise ConfigError(
            f"{lever} needs the next-item loss over each row's items, which model.name={config.model.name} does not "
            f"train with (it has its own objective); use one of {next_item}"
        )
    if t.whole_history and config.model.name == "pop":
        raise ConfigError(
            "train.whole_history=true with model.name=pop: pop counts each training row's items, and a user's "
            "history windows share one item each (a window's first input is the last target of the one before), "
            "which it would count twice; leave train.whole_history=false (pop then counts each user's newest "
            "model.max_len + 1 training items)"
        )
    m = config.model
    if m.ffn not in FEED_FORWARDS:
        raise ConfigError(f"model.ffn={m.ffn!r}; choose one of {list(FEED_FORWARDS)}")
    if m.residual not in RESIDUALS:
        raise ConfigError(f"model.residual={m.residual!r}; choose one of {list(RESIDUALS)}")
    _at_least("model.ffn_mult", m.ffn_mult, 1)
    if m.attn_dropout not in ATTENTION_DROPOUTS:
        raise ConfigError(f"model.attn_dropout={m.attn_dropout!r}; choose one of {list(ATTENTION_DROPOUTS)}")
    if m.positions not in POSITIONS:
        raise ConfigError(f"model.positions={m.positions!r}; choose one of {list(POSITIONS)}")
    if m.init not in INITS:
        raise ConfigError(f"model.init={m.init!r}; choose one of {list(INITS)}")
    defaults = type(m)()
    if m.name != "sasrec" and any(getattr(m, key) != getattr(defaults, key) for key in SASREC_LEVERS):
        names = [f"model.{key}" for key in SASREC_LEVERS]
        raise ConfigError(f"{', '.join(names[:-1])} and {names[-1]} are sasrec's; model.name={m.name}")


def check_levers_fit_mesh(config: Config) -> None:
    """On a mesh the CE is the item-sharded one (parallel/sharded_ce.py, with loss.temperature and
    loss.exclude_seen); the sampled softmax draws from the batch's targets only."""
    if config.loss.sampler != "in_batch":
        raise ConfigError(
            f"loss.sampler={config.loss.sampler} runs on one device only; set mesh.data=1 mesh.model=1 or "
            "loss.sampler=in_batch"
        )
