"""MovieLens-1M side features: genres, title words and release year of movies; gender, age and
occupation of users. SASRec's ids are joined to the original MovieLens ids through
`sas_to_original_items.txt` / `sas_to_original_users.txt` (`sas_id original_id` per line).

A malformed line is a DataError naming the file and the line; a run whose ids match none of the
files' is one too, and ids without side features are warned about."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from recattn_jax.errors import DataError, cut
from recattn_jax.features.coverage import id_coverage
from recattn_jax.features.item_features import ItemFeatures, build_item_features

TITLE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
FOLDER = "a MovieLens feature folder has movies.dat, users.dat, sas_to_original_items.txt and sas_to_original_users.txt"
OCCUPATIONS = 21  # users.dat occupation codes 0..20


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _lines(path: Path, encoding: str = "utf-8"):
    """(line number, line) of the non-blank lines of `path`."""
    if not path.is_file():
        raise DataError(f"{path}: not found; {FOLDER}")
    for number, line in enumerate(path.read_text(encoding=encoding).splitlines(), start=1):
        if line.strip():
            yield number, line


def read_id_map(path: Path) -> dict[int, int]:
    out: dict[int, int] = {}
    line_of: dict[int, int] = {}
    for number, line in _lines(Path(path), encoding="iso-8859-1"):
        parts = line.split()
        if len(parts) != 2 or not all(_is_id(p) for p in parts):
            raise DataError(f"{path} line {number}: expected 'sas_id original_id', got {line!r}")
        sas_id = int(parts[0])
        if sas_id in out:
            raise DataError(f"{path}: sas_id {sas_id} is mapped twice, line {line_of[sas_id]} and line {number}")
        out[sas_id], line_of[sas_id] = int(parts[1]), number
    return out


def _dat_rows(path: Path, fields: str) -> dict[int, tuple[int, list[str]]]:
    """ID -> (line number, fields after the ID) of a MovieLens `::`-separated file with `fields` per line."""
    out: dict[int, tuple[int, list[str]]] = {}
    for number, line in _lines(path, encoding="iso-8859-1"):
        parts = line.split("::")
        if len(parts) != fields.count("::") + 1 or not _is_id(parts[0]):
            raise DataError(f"{path} line {number}: expected '{fields}', got {cut(line)}")
        key = int(parts[0])
        if key in out:
            raise DataError(f"{path}: ID {key} has two lines, line {out[key][0]} and line {number}")
        out[key] = (number, parts[1:])
    return out


def movie_fields(folder: Path) -> dict[int, tuple[str, list[str]]]:
    """MovieID -> (title words, categories: genres and the release year as 'year=YYYY')."""
    out = {}
    for movie, (_, (title, genres)) in _dat_rows(Path(folder) / "movies.dat", "MovieID::Title::Genres").items():
        match = TITLE.match(title)
        words, year = (match.group(1), match.group(2)) if match else (title, None)
        cats = genres.split("|") + ([f"year={year}"] if year else [])
        out[movie] = (words, cats)
    return out


def movielens_item_features(
    folder: str | Path, item_ids: np.ndarray, *, min_df: int = 2, source: str = "the interaction data"
) -> ItemFeatures:
    """Features of item indices 1..I whose ids in the interaction file (SASRec ids) are item_ids[1:].

    Title words seen in fewer than `min_df` titles are dropped (they identify one movie, which its ID
    embedding already does)."""
    folder = Path(folder)
    to_movie = read_id_map(folder / "sas_to_original_items.txt")
    fields = movie_fields(folder)
    by_sas = {str(sas_id): fields[movie] for sas_id, movie in to_movie.items() if movie in fields}
    keys = [str(i) for i in item_ids[1:]]  # the ids as the interaction readers give them ('0001' is not 1)
    file = f"{folder}/sas_to_original_items.txt joined to movies.dat"
    coverage = id_coverage(keys, by_sas, file=file, source=source, count_unused=False)
    texts, cats = [], []
    for key in keys:
        words, item_cats = by_sas.get(key, ("", []))
        texts.append(words)
        cats.append(item_cats)
    features = build_item_features(texts, cats, min_df=min_df)
    if features.tfidf.shape[1] == 0:
        raise DataError(
            f"{folder / 'movies.dat'}: the {coverage['items_with_features']:,} movies of {source} have no title "
            f"word or genre that appears in at least {min_df} of them"
        )
    return dataclasses.replace(features, coverage=coverage)


def movielens_user_features(
    folder: str | Path, user_ids: np.ndarray, *, source: str = "the interaction data"
) -> np.ndarray:
    """[U, F] one-hot gender, age group and occupation of users whose SASRec ids are user_ids
    (all zero for a user missing from users.dat)."""
    folder = Path(folder)
    to_user = read_id_map(folder / "sas_to_original_users.txt")
    path = folder / "users.dat"
    rows = {}
    for user, (number, (sex, age_group, job, _)) in _dat_rows(
        path, "UserID::Gender::Age::Occupation::Zip-code"
    ).items():
        if sex not in ("F", "M") or not _is_id(age_group) or not (_is_id(job) and int(job) < OCCUPATIONS):
            raise DataError(
                f"{path} line {number}: expected gender F or M, a numeric age group and an occupation "
                f"0..{OCCUPATIONS - 1}, got {cut(f'{sex}::{age_group}::{job}')}"
            )
        rows[user] = (sex, int(age_group), int(job))
    by_sas = {str(sas_id): rows[user] for sas_id, user in to_user.items() if user in rows}
    keys = [str(u) for u in user_ids]
    id_coverage(
        keys,
        by_sas,
        file=f"{folder}/sas_to_original_users.txt joined to users.dat",
        source=source,
        what="users",
        count_unused=False,
    )
    genders, ages, occupations = ["F", "M"], sorted({r[1] for r in rows.values()}), list(range(OCCUPATIONS))
    out = np.zeros((len(user_ids), len(genders) + len(ages) + len(occupations)), np.float32)
    for row, key in enumerate(keys):
        found = by_sas.get(key)
        if found is None:
            continue
        gender, age, occupation = found
        out[row, genders.index(gender)] = 1
        out[row, len(genders) + ages.index(age)] = 1
        out[row, len(genders) + len(ages) + occupations.index(occupation)] = 1
    return out
