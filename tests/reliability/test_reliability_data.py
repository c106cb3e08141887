"""Data files: 20-digit ids, duplicate events, huge bad tokens, trailing blank lines, ISO-8601 times, float ids,
errors naming user ids."""

import numpy as np
import pandas as pd
import pytest
from tiny_configs import TINY, tiny_overrides

from recattn_jax.config import to_config
from recattn_jax.config_checks import check_negatives_fit
from recattn_jax.data.preprocess import build_sequences, leave_one_out_split
from recattn_jax.data.readers import read_sasrec_txt, read_table
from recattn_jax.errors import ConfigError, DataError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ids_beyond_int64_are_read(tmp_path):
    big = 2**63 + 5
    data = read_sasrec_txt(write(tmp_path, "ml.txt", f"{big} 1\n{big} 2\n7 {big}\n"))
    assert data.users.dtype == np.uint64 and data.users.tolist() == [big, big, 7] and data.items[-1] == big
    sequences = build_sequences(data)
    assert sequences.user_ids.tolist() == [big, 7] and sequences.item_ids[-1] == big


def test_ids_beyond_64_bits_are_one_line(tmp_path):
    with pytest.raises(DataError) as error:
        read_sasrec_txt(write(tmp_path, "ml.txt", f"1 2\n{2**64} 3\n"))
    assert str(error.value) == (
        f"ml.txt line 2: user id '{2**64}' does not fit in 64 bits (with negative ids, every id must lie in "
        "-2**63 .. 2**63-1)"
    )


def test_huge_bad_token_is_cut(tmp_path):
    token = "x" * 5_000_000
    with pytest.raises(DataError) as error:
        read_sasrec_txt(write(tmp_path, "ml.txt", f"1 2\n1 {token}\n"))
    assert len(str(error.value)) < 200
    assert str(error.value).startswith("ml.txt line 2: item id 'xxxx") and "(5,000,000 characters)" in str(error.value)


def test_trailing_blank_lines_are_accepted_inner_ones_not(tmp_path):
    data = read_sasrec_txt(write(tmp_path, "ml.txt", "1 2\n1 3\n\n\n"))
    assert data.items.tolist() == [2, 3]
    with pytest.raises(DataError, match="^ml.txt line 2: expected 'user item', got an empty line$"):
        read_sasrec_txt(write(tmp_path, "ml.txt", "1 2\n\n1 3\n"))


def test_duplicate_events_are_counted_and_warned(tmp_path, capsys):
    log = write(tmp_path, "log.csv", "user,item,timestamp\n1,2,10\n1,2,10\n1,3,11\n1,2,12\n")
    data = read_table(log)
    assert data.duplicates == 1  # the same item at another time is a repeat, not a duplicate
    assert build_sequences(data).report["duplicate_events"] == 1
    assert capsys.readouterr().err == (
        "warning: log.csv: 1 duplicate events (the same user, item and timestamp); kept, counted in results.json "
        "data.duplicate_events\n"
    )
    txt = read_sasrec_txt(write(tmp_path, "ml.txt", "1 2\n1 2\n1 3\n"))
    assert txt.duplicates == 1 and "1 duplicate events (consecutive identical lines)" in capsys.readouterr().err


def test_iso_8601_timestamps_are_parsed(tmp_path):
    text = "user,item,timestamp\n1,5,2024-01-02T00:00:00Z\n1,6,2024-01-01T12:00:00+01:00\n1,7,2024-01-01\n"
    data = read_table(write(tmp_path, "log.csv", text))
    assert data.items.tolist() == [7, 6, 5]
    with pytest.raises(DataError, match="^log.csv line 3: timestamp 'soon' is not a number"):
        read_table(write(tmp_path, "log.csv", "user,item,timestamp\n1,5,2024-01-02\n1,6,soon\n"))


def test_float_ids_in_parquet_read_as_integers(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1.0, 1.0], "item": [2.0, 3.0], "timestamp": [1, 2]}).to_parquet(path)
    assert read_table(path).items.tolist() == [2, 3] and read_table(path).items.dtype == np.int64
    pd.DataFrame({"user": [1.0, 1.0], "item": [2.0, 3.5], "timestamp": [1, 2]}).to_parquet(path)
    with pytest.raises(DataError, match=r"^log.parquet row 1: item id 3.5 is not an integer$"):
        read_table(path)


def test_too_many_negatives_names_the_user_id(tmp_path):
    lines = [f"{u} {i}" for u, items in ((501, [1, 2, 3]), (777, [1, 2, 3, 4, 5]), (900, [6, 7, 8])) for i in items]
    split = leave_one_out_split(build_sequences(read_sasrec_txt(write(tmp_path, "ml.txt", "\n".join(lines)))))
    config = to_config(TINY)
    config.eval.num_negatives = 3
    check_negatives_fit(config.eval, split)
    config.eval.num_negatives = 4
    with pytest.raises(ConfigError) as error:
        check_negatives_fit(config.eval, split)
    assert str(error.value) == (
        "eval.num_negatives=4 is more than user 777 can have (3 unseen items of 8); lower eval.num_negatives or "
        "set eval.sampled=false"
    )


def test_no_training_rows_is_one_line_before_training(cli, tmp_path):
    """Every user has 3 interactions: the split leaves each one training item and no next-item pair. The run
    says so before training (it used to run 0 steps and end with 'no checkpoint')."""
    path = write(tmp_path, "three.txt", "".join(f"{u} {i}\n" for u in (1, 2) for i in (1, 2, 3)))
    run_dir = tmp_path / "run"
    overrides = [o for o in tiny_overrides() if not o.startswith(("data.", "eval.sampled="))] + ["eval.sampled=false"]
    code, out, err = cli(
        "experiments.train", *overrides, "data=sasrec_txt", f"data.path={path}", f"hydra.run.dir={run_dir}"
    )
    assert code == 2 and "Traceback" not in out + err
    assert err.strip().splitlines() == [
        f"error: {path}: nothing to train on: no user has the 4 interactions that leave two training items "
        "(one input, one target) once the last two are held out for validation and test"
    ]
    assert not (run_dir / "checkpoints").exists()
