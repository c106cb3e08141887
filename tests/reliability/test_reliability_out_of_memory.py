"""XLA's RESOURCE_EXHAUSTED ends a run with one line that says how much the stage asked for and which keys size
it; the checkpoints already written stay and the run resumes from them."""

import jax
import jax.numpy as jnp
import pytest
from tiny_configs import tiny_overrides

from recattn_jax.config import Config, LossConfig
from recattn_jax.errors import OutOfMemory
from recattn_jax.losses import LOSSES
from recattn_jax.train import step as step_module
from recattn_jax.train.memory import device_memory, explain_out_of_memory, training_keys
from recattn_jax.train.run_dir import checkpoint_steps

PETABYTES = 10**15  # float32 elements: 4 PB, more than any machine's address space, refused at once


def allocate_too_much():
    """A real XLA allocation failure (RESOURCE_EXHAUSTED), raised within 0.1 s on CPU."""
    return jax.jit(lambda x: jnp.broadcast_to(x, (PETABYTES,)) + 1.0)(jnp.ones(())).block_until_ready()


def test_resource_exhausted_names_the_bytes_the_device_and_the_advice():
    kept = lambda: "b is kept"  # noqa: E731
    with pytest.raises(OutOfMemory) as error, explain_out_of_memory("the stage", "lower a.key (3)", kept):
        allocate_too_much()
    held = device_memory()
    assert held is not None and held > 0  # the machine's memory on CPU
    assert str(error.value) == (
        f"out of memory in the stage: XLA asked for 4,000,000.0 GB at once, the cpu device has "
        f"{held / 1e9:,.1f} GB; lower a.key (3); b is kept"
    )
    assert isinstance(error.value.__cause__, jax.errors.JaxRuntimeError)


def test_other_runtime_errors_pass_unchanged():
    other = jax.errors.JaxRuntimeError("INTERNAL: a kernel failed")
    with pytest.raises(jax.errors.JaxRuntimeError) as error, explain_out_of_memory("the stage", "advice"):
        raise other
    assert error.value is other


def test_training_keys_name_the_negatives_only_for_losses_that_draw_them():
    full = Config()
    assert training_keys(full) == (
        f"train.batch_size ({full.train.batch_size}), model.max_len ({full.model.max_len}) or "
        f"model.hidden ({full.model.hidden})"
    )
    for name in set(LOSSES) - {"ce"}:
        sampled = Config(loss=LossConfig(name=name, num_negatives=100))
        assert training_keys(sampled).endswith("model.hidden (64) or loss.num_negatives (100)")


def steps_that_run_out_of_memory_after(calls: int):
    """`make_train_step` whose steps after the first `calls` ask XLA for 4 PB."""
    real = step_module.make_train_step

    def make(graphdef, loss_fn):
        step, done = real(graphdef, loss_fn), []

        def train_step(state, batch, rng, loss_weight=None):
            done.append(1)
            if len(done) > calls:
                allocate_too_much()
            return step(state, batch, rng, loss_weight)

        return train_step

    return make


@pytest.mark.slow  # two tiny runs, about 15 s on 2 busy cores
def test_out_of_memory_at_step_3_keeps_step_2_and_the_run_resumes(cli, tmp_path, monkeypatch):
    overrides = [*tiny_overrides(), "train.max_steps=4", "train.ckpt_every_steps=1", f"hydra.run.dir={tmp_path}"]
    monkeypatch.setattr(step_module, "make_train_step", steps_that_run_out_of_memory_after(2))
    code, out, err = cli("experiments.train", *overrides)
    assert code == 2, err
    held = device_memory()
    assert err.strip().splitlines() == [
        "error: out of memory in the training step (epoch 1, after step 2): XLA asked for 4,000,000.0 GB at once, "
        f"the cpu device has {held / 1e9:,.1f} GB; lower train.batch_size (16), model.max_len (10) or "
        f"model.hidden (16); the latest checkpoint, step 2, is kept in {tmp_path / 'latest'}"
    ]
    assert checkpoint_steps(tmp_path / "latest") == [1, 2] and not (tmp_path / "results.json").exists()

    monkeypatch.setattr(step_module, "make_train_step", steps_that_run_out_of_memory_after(10))
    code, out, err = cli("experiments.train", *overrides, "train.resume=true")
    assert code == 0, err
    assert "NDCG@10" in out  # the resumed run reports its metrics
    assert (tmp_path / "results.json").exists() and checkpoint_steps(tmp_path / "latest")[-1] == 4


@pytest.mark.slow  # one tiny compile, about 14 s on 2 busy cores
def test_a_real_step_too_large_for_the_machine_is_explained(cli, tmp_path):
    """10^9 sampled negatives per position: the step's [positions, negatives, hidden] gather is 23 TB."""
    huge = ["loss=sampled_softmax", "loss.num_negatives=1000000000"]
    code, _, err = cli("experiments.train", *tiny_overrides(), *huge, f"hydra.run.dir={tmp_path}")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory in the training step (epoch 1, after step 0)")
    assert lines[0].endswith(
        "; lower train.batch_size (16), model.max_len (10), model.hidden (16) or loss.num_negatives (1000000000); "
        "no checkpoint had been written yet (train.ckpt_every_steps=500)"
    )


@pytest.mark.slow  # one tiny run
def test_out_of_memory_in_evaluation_names_the_eval_batch(cli, tmp_path, monkeypatch):
    from recattn_jax.eval.ranking import Evaluator

    monkeypatch.setattr(Evaluator, "evaluate", lambda self, state, eval_set: allocate_too_much())
    code, _, err = cli("experiments.train", *tiny_overrides(), f"hydra.run.dir={tmp_path}")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory in the evaluation on the valid set: ")
    assert lines[0].endswith("; lower eval.batch_size (32 users at once)")
    assert not (tmp_path / "results.json").exists()
