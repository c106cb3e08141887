"""What a run needs before its first step: the checked config, the data and its eval sets, the device layout
(built here, once per run), the model with its jitted step, and the evaluator.

Every input is read and checked before the run writes anything but its directory; then `config.yaml`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
from flax import nnx
from omegaconf import OmegaConf

from recattn_jax.config import Config
from recattn_jax.config_checks import check_backend, check_config, check_negatives_fit, check_sampler_fits
from recattn_jax.data.batches import NextItemArrays, SequenceRows, next_item_arrays, sequence_rows
from recattn_jax.data.load import load_split
from recattn_jax.data.preprocess import LeaveOneOutSplit
from recattn_jax.errors import DataError
from recattn_jax.eval.ranking import EvalSet, Evaluator, build_eval_set
from recattn_jax.features.load import load_item_features, load_user_features
from recattn_jax.parallel.distributed import initialize as initialize_distributed
from recattn_jax.parallel.distributed import is_primary
from recattn_jax.parallel.mesh import ParallelLayout
from recattn_jax.train.divergence import FiniteCheck
from recattn_jax.train.ema import with_averaged_weights
from recattn_jax.train.epoch import epoch_options, planned_steps
from recattn_jax.train.memory import explain_out_of_memory
from recattn_jax.train.run_dir import (
    check_same_data,
    check_shared_run_dir,
    data_fingerprint,
    prepare_run_dir,
    with_resolved_paths,
    write_atomic,
)
from recattn_jax.train.step import build_training


@dataclasses.dataclass(frozen=True)
class RunSetup:
    config: Config  # data paths resolved
    workdir: Path
    split: LeaveOneOutSplit
    layout: ParallelLayout | None  # None: one device in one process
    arrays: NextItemArrays | SequenceRows  # the training rows (with several processes, padded per process)
    eval_sets: dict[str, EvalSet]  # "valid" and "test" (with several processes, this process's users)
    graphdef: nnx.GraphDef  # of (model, optimizer)
    train_step: Callable
    pack: bool  # batches carry their target positions (`packs_positions`)
    seen: bool  # batches carry the rows' items for the loss (`losses.passes_row_items`)
    evaluator: Evaluator
    finite_check: FiniteCheck

    @property
    def log_dir(self) -> Path:
        """Process 0 logs into the run directory, any other process into a subfolder of its own."""
        return self.workdir if is_primary() else self.workdir / f"process_{jax.process_index()}"

    def model(self, state: nnx.State) -> nnx.Module:
        """The model of a (model, optimizer) state, with the averaged weights when `train.ema_decay` is set:
        what validation, the best checkpoint and the test metrics see."""
        return with_averaged_weights(*nnx.merge(self.graphdef, state))

    def trained_model(self, state: nnx.State) -> nnx.Module:
        """The model of a (model, optimizer) state with the trained weights, averaged or not."""
        return nnx.merge(self.graphdef, state)[0]

    def evaluate(self, model: nnx.Module, name: str) -> dict[str, dict[str, float]]:
        """{protocol: {metric: value}} of `model` on the eval set `name` ("valid" or "test")."""
        advice = f"lower eval.batch_size ({self.config.eval.batch_size} users at once)"
        with explain_out_of_memory(f"the evaluation on the {name} set", advice):
            return self.evaluator.evaluate(nnx.state(model), self.eval_sets[name])


def prepare_run(config: Config, workdir: str | Path) -> tuple[RunSetup, nnx.State]:
    """The run of `config` in `workdir` and its initial (model, optimizer) state."""
    check_config(config)  # every value, before any data is read or any file written
    initialize_distributed(config.distributed)  # multi-process runs: before the first JAX computation
    check_backend(config.kernel.backend)
    config, workdir = with_resolved_paths(config), Path(workdir)
    prepare_run_dir(config, workdir)  # a fresh run never mixes into a used directory; resume needs a run
    check_shared_run_dir(workdir)

    split = load_split(config.data)
    check_negatives_fit(config.eval, split)
    check_sampler_fits(config, split)
    max_len, num_items = config.model.max_len, split.data.num_items
    layout = ParallelLayout.from_config(config, num_items)
    # several processes: each pads only its own rows of every batch and keeps only its part of the eval users
    rows_of = sequence_rows if jax.process_count() > 1 else next_item_arrays
    arrays = rows_of(split.train_sequences, max_len, split.train_events, whole_history=config.train.whole_history)
    if arrays.num_rows == 0:
        raise DataError(
            f"{split.data.report['source']}: nothing to train on: no user has the 4 interactions that leave two "
            "training items (one input, one target) once the last two are held out for validation and test"
        )
    share = layout.share if layout is not None else None
    eval_sets = {name: build_eval_set(split, name, max_len, config.eval, share) for name in ("valid", "test")}

    features, user_features = load_item_features(config, split.data), load_user_features(config, split.data)
    graphdef, state, train_step, model_graphdef = build_training(
        config,
        num_items,
        features,
        user_features,
        split.data.num_event_types,
        total_steps=planned_steps(config.train, arrays.num_rows),
        layout=layout,
    )
    run = RunSetup(
        config=config,
        workdir=workdir,
        split=split,
        arrays=arrays,
        eval_sets=eval_sets,
        graphdef=graphdef,
        train_step=train_step,
        **epoch_options(config.loss, layout),
        evaluator=Evaluator(model_graphdef, config.eval, layout),
        finite_check=FiniteCheck(graphdef, split, max_len, config.train.lr),
    )
    check_same_data(config, workdir, data_fingerprint(split.data.sequences), write=is_primary())
    if is_primary():  # only process 0 writes files, and only once the inputs have been read without error
        # atomic: a kill while a resumed run rewrites it would leave a run that refuses to resume
        write_atomic(workdir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(config)))
    return run, state
