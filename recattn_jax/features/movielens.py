"""MovieLens-1M side features: genres, title words and release year of movies; gender, age and
occupation of users. SASRec's ids are joined to the original MovieLens ids through
`sas_to_original_items.txt` / `sas_to_original_users.txt` (`sas_id original_id` per line)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from recattn_jax.errors import DataError
from recattn_jax.features.item_features import ItemFeatures, build_item_features

TITLE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def read_id_map(path: Path) -> dict[int, int]:
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(f"{path} line {number}: expected 'sas_id original_id', got {line!r}")
        out[int(parts[0])] = int(parts[1])
    return out


def movie_fields(folder: Path) -> dict[int, tuple[str, list[str]]]:
    """MovieID -> (title words, categories: genres and the release year as 'year=YYYY')."""
    out = {}
    for line in (folder / "movies.dat").read_text(encoding="iso-8859-1").splitlines():
        movie, title, genres = line.split("::")
        match = TITLE.match(title)
        words, year = (match.group(1), match.group(2)) if match else (title, None)
        cats = genres.split("|") + ([f"year={year}"] if year else [])
        out[int(movie)] = (words, cats)
    return out


def movielens_item_features(folder: str | Path, item_ids: np.ndarray, *, min_df: int = 2) -> ItemFeatures:
    """Features of item indices 1..I whose ids in the interaction file (SASRec ids) are item_ids[1:].

    Title words seen in fewer than `min_df` titles are dropped (they identify one movie, which its ID
    embedding already does)."""
    folder = Path(folder)
    to_movie = read_id_map(folder / "sas_to_original_items.txt")
    fields = movie_fields(folder)
    texts, cats = [], []
    for sas_id in item_ids[1:]:
        words, item_cats = fields.get(to_movie.get(int(sas_id), -1), ("", []))
        texts.append(words)
        cats.append(item_cats)
    return build_item_features(texts, cats, min_df=min_df)


def movielens_user_features(folder: str | Path, user_ids: np.ndarray) -> np.ndarray:
    """[U, F] one-hot gender, age group and occupation of users whose SASRec ids are user_ids
    (all zero for a user missing from users.dat)."""
    folder = Path(folder)
    to_user = read_id_map(folder / "sas_to_original_users.txt")
    rows = {}
    for line in (folder / "users.dat").read_text(encoding="iso-8859-1").splitlines():
        user, sex, age_group, job, _ = line.split("::")
        rows[int(user)] = (sex, int(age_group), int(job))
    genders, ages, occupations = ["F", "M"], sorted({r[1] for r in rows.values()}), list(range(21))
    out = np.zeros((len(user_ids), len(genders) + len(ages) + len(occupations)), np.float32)
    for row, sas_id in enumerate(user_ids):
        found = rows.get(to_user.get(int(sas_id), -1))
        if found is None:
            continue
        gender, age, occupation = found
        out[row, genders.index(gender)] = 1
        out[row, len(genders) + ages.index(age)] = 1
        out[row, len(genders) + len(ages) + occupations.index(occupation)] = 1
    return out
