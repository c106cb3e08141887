"""recommend never returns a seen item, padding or a repeat, for any k and item_chunk; misuse is one line, exit 2."""

import jax
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from recattn_jax.errors import CheckpointError, DataError
from recattn_jax.recommend import load_run, recommend, unseen_unique
from recattn_jax.train.checkpoint import BestCheckpoint


def seen_pairs(split):
    return {(split.data.user_ids[u], split.data.item_ids[i]) for u, seq in enumerate(split.data.sequences) for i in seq}


@pytest.mark.parametrize("item_chunk", [0, 7])
def test_k_of_every_item_returns_only_unseen_distinct_items(finished_run, item_chunk, capsys):
    _, split, _ = load_run(finished_run)
    num_items = split.data.num_items
    recs = recommend(finished_run, k=num_items + 5, batch_size=16, item_chunk=item_chunk)
    seen = seen_pairs(split)
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    assert not recs.duplicated(["user", "item"]).any() and np.isfinite(recs["score"]).all()
    per_user = recs.groupby("user").size()
    unseen = {split.data.user_ids[u]: num_items - len(set(s)) for u, s in enumerate(split.data.sequences)}
    assert all(per_user[u] == unseen[u] for u in per_user.index)  # every unseen item, and only those
    assert (recs.groupby("user")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
    err = capsys.readouterr().err
    assert err == (
        f"warning: {split.data.num_users} of {split.data.num_users} users have fewer than k={num_items + 5} "
        "unseen items; they get fewer rows\n"
    )


def test_unseen_unique_drops_padding_seen_masked_and_repeats():
    items = np.array([[3, 1, 0, 3, 9, 2]])
    scores = np.array([[5.0, 4.0, -np.inf, 3.0, 2.0, np.nan]])
    keep = unseen_unique(items, [np.array([1])], scores, num_items=8)
    assert keep.tolist() == [[True, False, False, False, False, False]]


def test_nan_weights_are_refused(run_copy):
    _, _, model = load_run(run_copy)
    nnx.update(model, jax.tree.map(lambda x: x * np.nan, nnx.state(model, nnx.Param)))
    checkpoint = BestCheckpoint(run_copy / "checkpoints")
    checkpoint.save(99, model, 2.0)  # better than the real best: the one that is restored
    checkpoint.close()
    with pytest.raises(CheckpointError) as error:
        recommend(run_copy, k=3)
    assert str(error.value) == (
        f"run_dir={run_copy}: the best checkpoint's weights hold NaN or infinite values (a diverged run); "
        "retrain it, e.g. with a lower train.lr"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["k=abc"], "error: k='abc' must be an integer"),
        (["k=0"], "error: k=0 must be at least 1"),
        (["batch_size=0"], "error: batch_size=0 must be at least 1"),
        (["item_chunk=-1"], "error: item_chunk=-1 must be at least 0"),
        (["users=[]"], "error: users=[] names no user; leave users out to recommend for every user"),
    ],
)
def test_cli_misuse_is_one_line(cli, finished_run, tmp_path, args, message):
    code, _, err = cli("experiments.recommend", f"run_dir={finished_run}", f"out={tmp_path / 'r.csv'}", *args)
    assert (code, err.strip().splitlines()) == (2, [message])
    assert not (tmp_path / "r.csv").exists()


def test_cli_out_in_a_missing_directory_or_on_a_directory(cli, finished_run, tmp_path):
    code, _, err = cli("experiments.recommend", f"run_dir={finished_run}", f"out={tmp_path / 'no' / 'r.csv'}")
    assert (code, err) == (
        2,
        f"error: out={tmp_path / 'no' / 'r.csv'}: the directory {tmp_path / 'no'} does not exist\n",
    )
    code, _, err = cli("experiments.recommend", f"run_dir={finished_run}", f"out={tmp_path}")
    assert (code, err) == (
        2,
        f"error: out={tmp_path} is a directory; give a file name, e.g. out={tmp_path / 'recs.csv'}\n",
    )


def test_cli_writes_recommendations(cli, finished_run, tmp_path):
    code, out, err = cli("experiments.recommend", f"run_dir={finished_run}", "k=3", f"out={tmp_path / 'r.csv'}")
    assert code == 0, err
    recs = pd.read_csv(tmp_path / "r.csv")
    assert len(recs) == 3 * recs["user"].nunique() and "top 3 unseen items each" in out


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="triton runs on a GPU")
def test_run_trained_with_triton_is_served_by_the_reference_here(run_copy, capsys):
    config = (run_copy / "config.yaml").read_text()
    (run_copy / "config.yaml").write_text(config.replace("backend: auto", "backend: triton"))
    recs = recommend(run_copy, k=2, users=[2])
    assert len(recs) == 2
    err = capsys.readouterr().err
    assert err.startswith("warning: kernel.backend='triton': backend 'triton' needs a CUDA GPU")
    assert err.endswith("; scoring with kernel.backend='reference'\n")


def test_changed_data_is_refused(run_copy, capsys):
    """Data that changed since training (here: the synthetic generator's seed, the same catalogue size) would
    give its users another run's item rows without an error: recommend refuses it; a run recording no
    fingerprint (from before it was written) is served with a warning."""
    config = run_copy / "config.yaml"
    text = config.read_text()
    assert "\n    seed: 0\n" in text  # data.synthetic.seed, the only seed indented under data
    config.write_text(text.replace("\n    seed: 0\n", "\n    seed: 12345\n", 1))
    with pytest.raises(DataError) as error:
        load_run(run_copy)
    assert str(error.value).startswith(f"run_dir={run_copy}: the data changed since the run trained (now ")
    assert "point the run's config.yaml at the data it trained on, or train a new run" in str(error.value)
    config.write_text(text)
    (run_copy / "data_fingerprint.json").unlink()
    load_run(run_copy)
    assert "records no data_fingerprint.json: cannot check that the data read now is what it trained on" in (
        capsys.readouterr().err
    )
