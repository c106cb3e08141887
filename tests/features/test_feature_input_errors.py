"""Bad side-feature files: a DataError that names the file, the line or example ids; partial coverage
builds and warns with the counts."""

import copy

import numpy as np
import pytest
from tiny_configs import TINY

from recattn_jax.config import to_config
from recattn_jax.errors import DataError
from recattn_jax.features.movielens import movielens_item_features, movielens_user_features
from recattn_jax.features.table import table_item_features
from recattn_jax.train.loop import train_and_evaluate

ITEM_IDS = np.array([1, 1, 2, 3])  # items 1..3 of the interaction data; entry 0 is padding


def write(path, text):
    path.write_text(text)
    return path


def tiny_config_with_table(tmp_path, text):
    config = copy.deepcopy(TINY)
    config["model"].update(name="sasrec", item_features="tfidf")
    config["data"]["item_features"] = str(write(tmp_path / "items.csv", text))
    return to_config(config)


def test_a_table_that_matches_no_item_fails_before_training_naming_both_sides(tmp_path):
    rows = "".join(f"{1000 + i},word{i},cat{i % 2}\n" for i in range(1, 51))
    config = tiny_config_with_table(tmp_path, "item,text,categories\n" + rows)
    with pytest.raises(DataError, match=r"none of the \d+ items of .* is in .*items\.csv") as error:
        train_and_evaluate(config, tmp_path / "run")
    assert "'1001', '1002'" in str(error.value)  # the table's ids, beside the items'
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_zero_padded_table_ids_do_not_match_integer_items_and_the_error_says_why(tmp_path):
    path = write(tmp_path / "feat.csv", "item,text\n0001,a\n0002,b\n")
    with pytest.raises(DataError, match=r"none of the 3 items of good\.csv is in .*feat\.csv") as error:
        table_item_features(path, ITEM_IDS, source="good.csv")
    message = str(error.value)
    assert "'1', '2', '3'" in message and "'0001', '0002'" in message and "leading zeros" in message
    # ids the interaction reader keeps as strings ('0001') are matched as written
    features = table_item_features(path, np.array(["0001", "0001", "0002"], dtype=object))
    assert features.tfidf[1].any() and features.tfidf[2].any()


@pytest.mark.parametrize(
    "text, why",
    [
        ("item,text,categories\n1,,\n2,,\n", "have no word"),  # listed, but every cell empty
        ("item,text\n1,!!!\n2,...\n", "have no word"),  # no token at all (scikit-learn's "empty vocabulary")
        ("item\n1\n2\n", "neither a 'text' nor a 'categories' column"),  # nothing but ids
    ],
)
def test_a_table_that_gives_no_feature_words_is_an_error_naming_the_file(tmp_path, text, why):
    path = write(tmp_path / "feat.csv", text)
    with pytest.raises(DataError, match=rf"feat\.csv.*{why}"):
        table_item_features(path, ITEM_IDS)


def test_an_item_listed_twice_is_an_error_naming_the_id_and_both_lines(tmp_path):
    path = write(tmp_path / "feat.csv", "item,text,categories\n1,first,a\n2,other,b\n\n1,second,b\n")
    with pytest.raises(DataError, match=r"feat\.csv: item '1' has two rows, line 2 and line 5"):
        table_item_features(path, ITEM_IDS)


def test_partial_coverage_builds_warns_and_is_counted(tmp_path, capsys):
    path = write(tmp_path / "feat.csv", "item,text,categories\n1,toy story,a|b\n3,jumanji,c\n77,unknown,d\n")
    features = table_item_features(path, ITEM_IDS, source="good.csv")
    assert features.tfidf[1].any() and not features.tfidf[2].any() and features.tfidf[3].any()
    assert features.coverage == {
        "items": 3,
        "items_with_features": 2,
        "items_without_features": 1,
        "rows_for_unknown_ids": 1,
    }
    err = capsys.readouterr().err
    assert "warning: " in err and "feat.csv" in err
    assert "1 of the 3 items of good.csv lack side features" in err and "rows for 1 ids not in good.csv" in err
    assert "'77'" in err


def test_partial_coverage_still_trains_and_reaches_results_json(tmp_path, capsys):
    rows = "".join(f"{i},word{i % 7} common,topic{i % 3}\n" for i in range(1, 51, 2))  # every other item
    results = train_and_evaluate(tiny_config_with_table(tmp_path, "item,text,categories\n" + rows), tmp_path / "run")
    assert np.isfinite(results["train_loss"])
    counts = results["data"]["item_features"]
    assert counts["file"].endswith("items.csv") and counts["items_with_features"] == 25
    assert counts["items_without_features"] == counts["items"] - 25 > 0
    assert "lack side features" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, where",
    [
        ('item,text,categories\n1,a,b\n2,"unterminated,c\n3,x,y\n', r"line 3: a quoted field .* never closed"),
        ("", r"empty"),
        ("\n\n", r"empty"),
        ("item,text,categories\n1,a,b\n2,short\n", r"line 3: 2 fields where the header has 3"),
        ("item,text,categories\n1,a,b,extra\n", r"line 2: 4 fields where the header has 3"),
        ("item,text,categories\n1,a,b\n,orphan,c\n", r"line 3: empty item id"),
        (b"item,text\n1,caf\xe9\n", r"line 2: not UTF-8"),
    ],
)
def test_a_malformed_table_is_an_error_naming_the_file_and_line(tmp_path, text, where):
    path = tmp_path / "feat.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=rf"feat\.csv.*{where}"):
        table_item_features(path, ITEM_IDS)


def movielens_folder(folder, movies, id_map="1 1\n2 2\n3 3\n"):
    folder.mkdir()
    (folder / "movies.dat").write_text(movies, encoding="iso-8859-1")
    (folder / "sas_to_original_items.txt").write_text(id_map)
    return folder


@pytest.mark.parametrize(
    "movies, where",
    [
        ("1::Toy Story (1995)::Animation\n2::Broken line\n", "line 2"),
        ("1::Toy Story (1995)::Animation\nx2::Jumanji (1995)::Adventure\n", "line 2"),
        ("1::Toy Story (1995)::Animation\n1::Toy Story (1995)::Comedy\n", "ID 1 has two lines, line 1 and line 2"),
    ],
)
def test_a_malformed_movies_dat_is_an_error_naming_the_line(tmp_path, movies, where):
    folder = movielens_folder(tmp_path / "ml", movies)
    with pytest.raises(DataError, match=rf"movies\.dat.*{where}"):
        movielens_item_features(folder, ITEM_IDS, min_df=1)


def test_movielens_features_that_match_no_item_or_lack_the_id_map_are_errors(tmp_path):
    folder = movielens_folder(tmp_path / "ml", "1::Toy Story (1995)::Animation\n", id_map="5 1\n")
    with pytest.raises(DataError, match=r"none of the 3 items of .* is in .*sas_to_original_items\.txt"):
        movielens_item_features(folder, ITEM_IDS, min_df=1)
    (folder / "sas_to_original_items.txt").unlink()
    with pytest.raises(DataError, match=r"sas_to_original_items\.txt: not found"):
        movielens_item_features(folder, ITEM_IDS, min_df=1)


def test_a_malformed_users_dat_is_an_error_naming_the_line(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::X::56::16::70072\n")
    (folder / "sas_to_original_users.txt").write_text("1 1\n2 2\n")
    with pytest.raises(DataError, match=r"users\.dat line 2: expected gender F or M"):
        movielens_user_features(folder, np.array([1, 2]))
