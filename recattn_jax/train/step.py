"""One training step: the optimizer, the pure jitted step over (model, optimizer) state, and their assembly."""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import optax
from flax import nnx

from recattn_jax.config import Config, TrainConfig
from recattn_jax.config_checks import check_levers_fit_mesh
from recattn_jax.errors import ConfigError
from recattn_jax.losses import next_item_loss
from recattn_jax.models import build_model
from recattn_jax.models.scoring import training_loss
from recattn_jax.parallel.mesh import ParallelLayout
from recattn_jax.parallel.sharded_ce import sharded_next_item_loss
from recattn_jax.train.ema import ema_of_params
from recattn_jax.train.lr_schedule import learning_rate


def make_optimizer(config: TrainConfig, total_steps: int | None = None) -> optax.GradientTransformation:
    """`train.optimizer` at the learning rate of `train/lr_schedule.py` (`total_steps`: the run's planned steps,
    which `train.lr_schedule=cosine` decays over), after clipping gradients to `train.grad_clip` if set, and
    keeping a moving average of the weights if `train.ema_decay` is set (train/ema.py)."""
    lr = learning_rate(config, total_steps)
    if config.optimizer == "adam":
        optimizer = optax.adam(lr, b1=config.beta1, b2=config.beta2)
    elif config.optimizer == "adamw":
        optimizer = optax.adamw(lr, b1=config.beta1, b2=config.beta2, weight_decay=config.weight_decay)
    else:
        raise ConfigError(f"train.optimizer={config.optimizer!r}; choose one of ['adam', 'adamw']")
    if config.grad_clip is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip), optimizer)
    if config.ema_decay:  # last: it averages the params after the final updates
        optimizer = optax.chain(optimizer, ema_of_params(config.ema_decay))
    return optimizer


def make_train_step(graphdef: nnx.GraphDef, loss_fn):
    """A pure, jitted step over the (model, optimizer) state; the old state's buffers are donated.

    `loss_weight` (a scalar, or None for 1) scales the loss the gradient is taken of; the reported loss is
    the unscaled one. Bucketed epochs pass the batch's share of the positions (see `run_epoch`)."""

    @partial(jax.jit, donate_argnums=0)
    def train_step(state, batch, rng, loss_weight=None):
        model, optimizer = nnx.merge(graphdef, state)
        rng = jax.random.fold_in(rng, optimizer.step[...])  # a fresh, reproducible key per step
        dropout_rng, loss_rng = jax.random.split(rng)

        def loss_of(model):  # the next-item loss or the model's own, by its declared kind (models/interface.py)
            return training_loss(model, batch, loss_fn, loss_rng, nnx.Rngs(dropout=dropout_rng))

        def weighted_loss(model):
            loss = loss_of(model)
            return (loss if loss_weight is None else loss * loss_weight), loss

        (_, loss), grads = nnx.value_and_grad(weighted_loss, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), {"loss": loss}

    return train_step


def build_training(
    config: Config,
    num_items: int,
    features=None,
    user_features=None,
    num_event_types: int = 0,
    total_steps: int | None = None,
    *,
    layout: ParallelLayout | Literal["from_config"] | None = "from_config",
):
    """Model, optimizer and jitted step for `config`: returns (graphdef, state, train_step, model graphdef).

    `features` / `user_features`: side features of items / users (recattn_jax.features);
    `num_event_types`: the data's event types (SequenceData.num_event_types), 0 for none;
    `total_steps`: the run's planned steps (a learning-rate schedule's length);
    `layout`: the run's device layout (None: one device in one process), by default
    `ParallelLayout.from_config(config, num_items)`."""
    init_key = jax.random.split(jax.random.key(config.seed))[0]
    model = build_model(
        config.model,
        num_items,
        backend=config.kernel.backend,
        rngs=nnx.Rngs(init_key),
        features=features,
        user_features=user_features,
        num_event_types=num_event_types,
    )
    loss_fn = next_item_loss(
        config.loss.name,
        config.loss.num_negatives,
        gbce_t=config.loss.gbce_t,
        logq_correction=config.loss.logq_correction,
        temperature=config.loss.temperature,
        exclude_seen=config.loss.exclude_seen,
        sampler=config.loss.sampler,
    )
    if layout == "from_config":
        layout = ParallelLayout.from_config(config, num_items)
    if layout is not None:  # None: one device, the code below unchanged
        check_levers_fit_mesh(config)
        # a model with its own loss (bert4rec, bpr_mf, din, pop, user features) runs it under jit on the
        # mesh: GSPMD adds the collectives its lookups into row-sharded tables need; its negatives are
        # drawn from 1..I (model.num_items), never from the pad rows
        layout.pad_items(model)  # item rows to a multiple of mesh.model; pad rows never compete
        loss_fn = sharded_next_item_loss(config.loss, layout)
    optimizer = nnx.Optimizer(model, make_optimizer(config.train, total_steps), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    if layout is not None:
        state = layout.place_state(state)  # item rows sharded over `model`, the rest replicated
    train_step = make_train_step(graphdef, loss_fn)
    return graphdef, state, train_step, nnx.graphdef(model)
