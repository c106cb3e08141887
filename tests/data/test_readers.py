import numpy as np
import pytest

from recattn_jax.data.readers import read_sasrec_txt, read_table
from recattn_jax.errors import DataError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sasrec_txt_keeps_file_order(tmp_path):
    data = read_sasrec_txt(write(tmp_path, "ml.txt", "1 5\n1 3\n2 7\n1 9\n"))
    np.testing.assert_array_equal(data.users, [1, 1, 2, 1])
    np.testing.assert_array_equal(data.items, [5, 3, 7, 9])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2\n1 3\n2 x7\n", "ml.txt line 3: item id 'x7' is not an integer"),
        ("1 2\nu1 3\n", "ml.txt line 2: user id 'u1' is not an integer"),
        ("1 2\n1 2 3\n", "ml.txt line 2: expected 'user item', got 3 fields"),
        ("1 2\n\n1 3\n", "ml.txt line 2: expected 'user item', got an empty line"),
        ("1 2\n1\n", "ml.txt line 2: expected 'user item', got 1 fields"),
        ("1 2.5\n", "ml.txt line 1: item id '2.5' is not an integer"),
    ],
)
def test_sasrec_txt_bad_lines_name_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_sasrec_txt(write(tmp_path, "ml.txt", text))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_sasrec_txt(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="the file is empty"):
        read_sasrec_txt(write(tmp_path, "empty.txt", ""))
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_table_stable_sort_keeps_file_order_of_ties(tmp_path):
    # user 1 has two events at t=5 (items 30 then 10): file order decides the last (test) item
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,20,1\n2,40,3\n1,30,5\n1,10,5\n2,50,2\n")
    data = read_table(path)
    np.testing.assert_array_equal(data.users, [1, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.items, [20, 30, 10, 50, 40])
    swapped = write(tmp_path, "swapped.csv", "user,item,timestamp\n1,20,1\n2,40,3\n1,10,5\n1,30,5\n2,50,2\n")
    np.testing.assert_array_equal(read_table(swapped).items, [20, 10, 30, 50, 40])


def test_table_parquet_and_custom_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "log.parquet"
    pd.DataFrame({"uid": ["a", "b", "a"], "iid": [3, 4, 5], "ts": [2.0, 1.0, 1.0]}).to_parquet(path)
    data = read_table(path, user_col="uid", item_col="iid", time_col="ts")
    np.testing.assert_array_equal(data.users, ["a", "a", "b"])
    np.testing.assert_array_equal(data.items, [5, 3, 4])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user,item\n1,2\n", r"missing column\(s\) \['timestamp'\]"),
        ("user,item,timestamp\n1,2,3\n1,,4\n", "log.csv line 3: column 'item' is empty"),
        ("user,item,timestamp\n1,2,3\n1,3,soon\n", "log.csv line 3: timestamp 'soon' is not a number"),
        ("user,item,timestamp\n", "no interactions in the file"),
    ],
)
def test_table_bad_input(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_table(write(tmp_path, "log.csv", text))
