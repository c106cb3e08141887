"""Bad interaction files get an error naming the file and the line (or row and column); nothing is read as
something else: byte-order marks, non-ASCII digits, zero-padded ids, float ids, mixed timestamps, clashing
column names."""

import codecs
import re

import numpy as np
import pandas as pd
import pytest
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.config_checks import check_config
from recattn_jax.data.preprocess import build_sequences
from recattn_jax.data.readers import read_sasrec_txt, read_table
from recattn_jax.errors import ConfigError, DataError
from recattn_jax.features.table import table_item_features


def write(tmp_path, name, text, *, bom=False):
    path = tmp_path / name
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode())
    return path


# each of these sends the text reader from its fast parser to its line-by-line scan
@pytest.mark.parametrize("text", ["1 2\n1 3\n2 4\n\n", "1 2\n1 3\n2\t4\n", "1 2\n1  3\n2 4\n"])
def test_sasrec_txt_byte_order_mark_is_ignored(tmp_path, text):
    data = read_sasrec_txt(write(tmp_path, "ml.txt", text, bom=True))
    assert data.users.tolist() == [1, 1, 2] and data.items.tolist() == [2, 3, 4]


def test_sasrec_txt_byte_order_mark_leaves_the_bad_line_named(tmp_path):
    with pytest.raises(DataError, match="^ml.txt line 3: item id 'x' is not an integer$"):
        read_sasrec_txt(write(tmp_path, "ml.txt", "1 2\n1 3\n2 x\n", bom=True))


def test_table_byte_order_mark_is_ignored(tmp_path):
    data = read_table(write(tmp_path, "log.tsv", "user\titem\ttimestamp\n1\t2\t1\n1\t3\t2\n", bom=True))
    assert data.items.tolist() == [2, 3]


@pytest.mark.parametrize("token", ["1_0", "٣", "１", "1e3", "4.0", "0x10", "--1"])
def test_sasrec_txt_ids_are_ascii_integers(tmp_path, token):
    with pytest.raises(DataError, match=f"^ml.txt line 2: item id '{token}' is not an integer"):
        read_sasrec_txt(write(tmp_path, "ml.txt", f"1 2\n1 {token}\n2 5\n"))


def test_sasrec_txt_signs_and_leading_zeros_are_integers(tmp_path):
    data = read_sasrec_txt(write(tmp_path, "ml.txt", "1 +2\n1 007\n-3 4\n"))
    assert data.users.tolist() == [1, 1, -3] and data.items.tolist() == [2, 7, 4]


def test_csv_zero_padded_ids_stay_the_strings_written(tmp_path):
    text = "user,item,timestamp\n0001,0000000006,1\n0001,0000000012,2\n0002,0000000006,1\n"
    data = read_table(write(tmp_path, "log.csv", text))
    assert data.users.tolist() == ["0001", "0001", "0002"]
    assert data.items.tolist() == ["0000000006", "0000000012", "0000000006"]
    # downstream: the id maps keep the strings, so a feature table keyed by ASIN joins and output prints the ASIN
    sequences = build_sequences(data)
    assert sequences.item_ids[1:].tolist() == ["0000000006", "0000000012"]
    assert sequences.user_ids.tolist() == ["0001", "0002"]
    table = write(tmp_path, "items.csv", "item,text,categories\n0000000012,mascara,eyes\n0000000006,lipstick,lips\n")
    features = table_item_features(table, sequences.item_ids)
    assert features.tfidf[1].any() and features.tfidf[2].any()  # both join by the id as written
    assert not np.allclose(features.tfidf[1], features.tfidf[2])


def test_csv_zero_padded_ids_beside_plain_ones_are_all_strings(tmp_path):
    data = read_table(write(tmp_path, "log.csv", "user,item,timestamp\n1,005,1\n1,7,2\n"))
    assert data.users.tolist() == [1, 1] and data.users.dtype == np.int64
    assert data.items.tolist() == ["005", "7"]


@pytest.mark.parametrize("suffix", ["csv", "tsv"])
def test_csv_plain_integer_ids_read_as_before(tmp_path, suffix):
    sep = "\t" if suffix == "tsv" else ","
    rows = [("user", "item", "timestamp"), ("-3", "0", "2"), ("-3", "17", "1"), ("8", "9223372036854775808", "1")]
    data = read_table(write(tmp_path, f"log.{suffix}", "".join(sep.join(r) + "\n" for r in rows)))
    assert data.users.dtype == np.int64 and data.users.tolist() == [-3, -3, 8]
    assert data.items.dtype == np.uint64 and data.items.tolist() == [17, 0, 2**63]
    floats = read_table(write(tmp_path, "log.csv", "user,item,timestamp\n1,7.0,1\n1, 8 ,2\n"))
    assert floats.items.dtype == np.int64 and floats.items.tolist() == [7, 8]


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("1e20", "item id 1e+20 in column 'item' is a float of magnitude 2**53 or more"),
        ("-1e19", "item id -1e+19 in column 'item' is a float of magnitude 2**53 or more"),
        ("inf", "item id inf in column 'item' is not a finite number"),
        ("7.5", "item id 7.5 is not an integer"),
    ],
)
def test_csv_float_ids_must_be_exact_integers(tmp_path, item, problem):
    text = f"user,item,timestamp\n1,5,1\n1,6,2\n2,{item},3\n2,1e3,4\n"
    with pytest.raises(DataError, match=f"^{re.escape(f'log.csv line 4: {problem}')}"):
        read_table(write(tmp_path, "log.csv", text))


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        (2.0**53 + 2, "user id 9007199254740994.0 in column 'uid' is a float of magnitude 2**53 or more"),
        (-(2.0**63) * 4, "user id -3.6893488147419103e+19 in column 'uid' is a float of magnitude 2**53"),
        (float("inf"), "user id inf in column 'uid' is not a finite number"),
    ],
)
def test_parquet_float_ids_must_be_exact_integers(tmp_path, user, problem):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"uid": [1.0, 1.0, user], "item": [2, 3, 4], "timestamp": [1, 2, 3]}).to_parquet(path)
    with pytest.raises(DataError, match=f"^{re.escape(f'log.parquet row 2: {problem}')}"):
        read_table(path, user_col="uid")


def test_mixed_timestamp_formats_name_the_odd_row(tmp_path):
    text = "user,item,timestamp\n1,5,2024-01-01\n1,6,2024-01-02\n2,7,1704412800\n2,8,2024-01-04\n"
    with pytest.raises(DataError) as error:
        read_table(write(tmp_path, "log.csv", text))
    assert str(error.value) == (
        "log.csv line 4: column 'timestamp' mixes timestamp formats: '1704412800' is a number, while 3 rows are "
        "ISO-8601 date-times (line 2: '2024-01-01'); a file uses one of the two"
    )
    numbers_first = "user,item,time\n1,5,1\n1,6,2\n2,7,2024-01-03\n"
    with pytest.raises(DataError, match="^log.csv line 4: column 'time' mixes timestamp formats: '2024-01-03' is an"):
        read_table(write(tmp_path, "log.csv", numbers_first), time_col="time")


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_infinite_timestamps_are_refused(tmp_path, value):
    with pytest.raises(DataError, match="^log.csv line 3: timestamp -?inf is not a finite number$"):
        read_table(write(tmp_path, "log.csv", f"user,item,timestamp\n1,5,1\n1,6,{value}\n"))


def test_infinite_parquet_timestamp_is_refused(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1, 1], "item": [2, 3], "timestamp": [np.inf, 1.0]}).to_parquet(path)
    with pytest.raises(DataError, match="^log.parquet row 0: timestamp inf is not a finite number$"):
        read_table(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"item_col": "user"}, "data.item_col='user' names the same column as data.user_col"),
        ({"time_col": "item"}, "data.time_col='item' names the same column as data.item_col"),
        ({"event_col": "user"}, "data.event_col='user' names the same column as data.user_col"),
        ({"time_col": "ts", "event_col": "ts"}, "data.event_col='ts' names the same column as data.time_col"),
    ],
)
def test_one_column_for_two_roles_is_a_config_error(data, message):
    config = to_config({**TINY, "data": {"name": "csv", "path": "absent.csv", **data}})
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_config(config)


def test_read_table_refuses_one_column_for_two_roles_before_reading(tmp_path):
    # the file does not exist: the clash is found before any reading
    with pytest.raises(ConfigError, match="^item_col='user' names the same column as user_col$"):
        read_table(tmp_path / "absent.csv", item_col="user")
    assert read_table(write(tmp_path, "log.csv", "user,item\n1,2\n"), time_col=None).items.tolist() == [2]
