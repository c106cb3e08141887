import copy
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn.feature_extraction.text import TfidfVectorizer
from tiny_configs import ML1M, TINY

from recattn_jax.config import ModelConfig, to_config
from recattn_jax.errors import ConfigError
from recattn_jax.features.item_features import build_item_features
from recattn_jax.features.text import TOKEN_PATTERN, bag_of_words, tfidf
from recattn_jax.losses import next_item_loss
from recattn_jax.models import build_model, scoring
from recattn_jax.models.scoring import training_loss
from recattn_jax.train.loop import train_and_evaluate

CORPUS = ["toy story animation comedy", "jumanji adventure fantasy", "grumpier old men comedy romance", "", "toy toy"]


def test_tfidf_matches_scikit_learn():
    got, vocabulary = tfidf(CORPUS)
    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN)
    expected = vectorizer.fit_transform(CORPUS).toarray()
    assert vocabulary == list(vectorizer.get_feature_names_out())
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not got[3].any()  # an empty document has no features
    counts, vocabulary = bag_of_words(CORPUS)
    assert counts[4, vocabulary.index("toy")] == 2 and counts.sum() == 14


def test_item_features_pack_categories_and_keep_padding_row_empty():
    features = build_item_features(["toy story", "", ""], [["Comedy", "Animation"], ["Drama"], []])
    assert features.tfidf.shape[0] == 4 and not features.tfidf[0].any() and not features.tfidf[3].any()
    assert features.tfidf[2].any()  # categories alone still give a TF-IDF row
    assert features.category_names == ["Animation", "Comedy", "Drama"]
    np.testing.assert_array_equal(features.categories, [[0, 0], [2, 1], [3, 0], [0, 0]])


def test_fusion_without_side_features_is_the_id_embedding():
    features = build_item_features(["a b", "", "c"], [["x", "y"], [], []])
    features = dataclasses.replace(features, tfidf=features.tfidf * (np.arange(4) != 1)[:, None])  # 1: cats only
    config = ModelConfig(name="sasrec", max_len=4, hidden=8, blocks=1, heads=1, dropout=0.0)
    model = build_model(config, 3, backend="reference", rngs=nnx.Rngs(0), features=features)
    ids = model.embedding.items.embedding[...]
    table = nnx.jit(lambda model: model.item_table())(model)  # one compile, not one per operation
    np.testing.assert_allclose(table[2], ids[2], atol=1e-6)  # item 2 has no features: ID only
    assert not np.allclose(table[1], ids[1]) and not np.allclose(table[3], ids[3])
    # item 1: the pool covers exactly ID + its two categories (no zero text field)
    fusion = model.embedding.fusion
    fields = jnp.stack([ids[1], *fusion.category_embedding(jnp.asarray(features.categories[1]))])
    w = jax.nn.softmax(fields.reshape(3, 1, 8) @ fusion.pooling.query[...][0], axis=0)
    np.testing.assert_allclose(table[1], jnp.sum(w * fields, axis=0), atol=1e-5)
    assert np.all(
        np.isfinite(nnx.jit(lambda model, seq: model.user_representation(seq))(model, jnp.array([[0, 0, 1, 2]])))
    )


@pytest.mark.parametrize(
    "name", ["sasrec", *(pytest.param(n, marks=pytest.mark.slow) for n in ("bert4rec", "lstm", "gru4rec", "bpr_mf"))]
)
def test_tfidf_fusion_trains_on_a_feature_table(name, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["item,text,categories"] + [
        f"{i},word{i % 7} common,topic{i % 3}|genre{i % 2}" for i in range(1, 51) if rng.random() < 0.8
    ]
    (tmp_path / "items.csv").write_text("\n".join(rows) + "\n")
    config = copy.deepcopy(TINY)
    config["model"].update(name=name, item_features="tfidf")
    config["data"]["item_features"] = str(tmp_path / "items.csv")
    results = train_and_evaluate(to_config(config), tmp_path / "run")
    assert np.isfinite(results["train_loss"]) and 0 <= results["test"]["full"]["NDCG@10"] <= 1


def test_models_without_fusion_refuse_features(tmp_path):
    config = copy.deepcopy(TINY)
    config["model"].update(name="pop", item_features="tfidf")
    (tmp_path / "items.csv").write_text("item,text\n1,hello\n")
    config["data"]["item_features"] = str(tmp_path / "items.csv")
    with pytest.raises(ConfigError, match="no item-feature fusion"):
        train_and_evaluate(to_config(config), tmp_path / "run")


@pytest.mark.skipif(not (ML1M / "movies.dat").exists(), reason="ML-1M side files are not in ../shared/data")
def test_movielens_features_join_through_the_sas_ids():
    from recattn_jax.features.movielens import movielens_item_features, movielens_user_features, read_id_map

    to_movie = read_id_map(ML1M / "sas_to_original_items.txt")
    item_ids = np.arange(0, 4)  # SAS ids 1..3
    features = movielens_item_features(ML1M, item_ids, min_df=1)
    toy_story = next(k for k, v in to_movie.items() if v == 1)  # MovieID 1: Toy Story (1995)
    names = features.category_names
    if toy_story <= 3:
        cats = {names[c - 1] for c in features.categories[toy_story] if c}
        assert cats == {"Animation", "Children's", "Comedy", "year=1995"}
    assert features.tfidf.shape[0] == 4 and all(features.tfidf[r].any() for r in (1, 2, 3))
    users = movielens_user_features(ML1M, np.array([1, 2]))
    assert users.shape[0] == 2 and np.all(users.sum(axis=1) == 3)  # gender, age and occupation one-hot


def fake_movielens(folder, num_users=100):
    """users.dat and its id map for user ids 0..num_users-1 (the synthetic data's ids)."""
    folder.mkdir()
    occupations = "\n".join(f"{u + 1}::{'FM'[u % 2]}::{[1, 18, 25][u % 3]}::{u % 21}::00000" for u in range(num_users))
    (folder / "users.dat").write_text(occupations + "\n", encoding="iso-8859-1")
    (folder / "sas_to_original_users.txt").write_text("".join(f"{u} {u + 1}\n" for u in range(num_users)))
    return folder


@pytest.mark.slow  # the fast tier trains with user features from the same files in test_user_features_reach_*
def test_sasrec_trains_with_user_features(tmp_path):
    config = copy.deepcopy(TINY)
    config["model"].update(name="sasrec", user_features=True)
    config["data"]["item_features"] = str(fake_movielens(tmp_path / "ml"))
    results = train_and_evaluate(to_config(config), tmp_path / "run")
    assert np.isfinite(results["train_loss"]) and 0 <= results["test"]["full"]["NDCG@10"] <= 1


def test_user_features_change_the_user():
    model = build_model(
        ModelConfig(max_len=4, hidden=8, blocks=1, heads=1, dropout=0.0),
        5,
        backend="reference",
        rngs=nnx.Rngs(0),
        user_features=np.eye(3, dtype=np.float32),
    )
    kernel = jnp.arange(24.0).reshape(3, 8)
    model.project.kernel[...] = kernel
    seq = jnp.array([[0, 1, 2, 3], [0, 1, 2, 3]])
    rep = nnx.jit(lambda model, seq, users: model.user_representation(seq, users=users))(model, seq, jnp.array([0, 1]))
    np.testing.assert_allclose(rep[0] - rep[1], kernel[0] - kernel[1], atol=1e-5)  # only the user vector differs
    with pytest.raises(ConfigError, match="user_features"):
        build_model(ModelConfig(name="pop"), 5, backend="reference", rngs=nnx.Rngs(0), user_features=np.eye(3))


def test_user_features_leave_the_lstm_item_bias_alone():
    """lstm scores W_i h + b_i through [h, 1] . [W_i, b_i]: W f_u moves h and leaves the 1 (b_i is not rescaled)."""
    config = ModelConfig(name="lstm", max_len=4, hidden=8, dropout=0.0)
    model = build_model(config, 5, backend="reference", rngs=nnx.Rngs(0), user_features=np.eye(3, dtype=np.float32))
    model.inner.bias[...] = jax.random.normal(jax.random.key(2), model.inner.bias.shape)
    model.project.kernel[...] = kernel = jax.random.normal(jax.random.key(1), model.project.kernel.shape)
    seq, users = jnp.array([[0, 1, 2, 3], [0, 1, 2, 3]]), jnp.array([0, 2])

    @nnx.jit
    def scores(model, seq, users):
        with_user = model.user_representation(seq, users=users) @ model.item_table().T
        without = model.inner.user_representation(seq) @ model.inner.item_table().T
        return with_user, without, model.inner.outputs.table

    with_user, without, weights = scores(model, seq, users)
    np.testing.assert_allclose(with_user, without + kernel[users] @ weights.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru4rec", "bpr_mf"])
def test_fused_tables_of_recurrent_and_mf_models_use_the_features(name):
    features = build_item_features(["a b", "", "c"], [["x", "y"], [], []])
    config = ModelConfig(name=name, max_len=4, hidden=8, heads=1, dropout=0.0)
    plain = build_model(config, 3, backend="reference", rngs=nnx.Rngs(0))
    fused = build_model(config, 3, backend="reference", rngs=nnx.Rngs(0), features=features)
    seq = jnp.array([[0, 1, 2, 3]])
    item_table = nnx.jit(lambda model: model.item_table())  # one compile, not one per operation
    assert item_table(fused).shape == item_table(plain).shape
    # item 2 has no side features: its output row is the ID row; items 1 and 3 differ from theirs
    inner_table = item_table(fused)[:, :8]
    assert not np.allclose(inner_table[1], inner_table[2])
    ids = {
        "lstm": lambda m: m.outputs.ids.embedding[...],
        "gru4rec": lambda m: m.outputs.ids.embedding[...],
        "bpr_mf": lambda m: m.item_factors.ids.embedding[...],
    }[name](fused)
    np.testing.assert_allclose(inner_table[2], ids[2], atol=1e-6)
    assert not np.allclose(inner_table[1], ids[1])
    assert np.all(np.isfinite(nnx.jit(lambda model, seq: model.user_representation(seq))(fused, seq)))


@pytest.mark.parametrize(
    "name", ["bpr_mf", *(pytest.param(n, marks=pytest.mark.slow) for n in ("din", "bert4rec", "gru4rec"))]
)
def test_user_features_reach_the_scores_and_the_loss(name, tmp_path):
    config = ModelConfig(name=name, max_len=4, hidden=8, blocks=1, heads=1, dropout=0.0, mask_prob=1.0)
    model = build_model(config, 5, backend="reference", rngs=nnx.Rngs(0), user_features=np.eye(3, dtype=np.float32))
    seq = jnp.array([[0, 1, 2, 3], [0, 1, 2, 3]])
    users = jnp.array([0, 1])
    score_all, score_items = nnx.jit(scoring.score_all), nnx.jit(scoring.score_items)  # one compile each
    same = score_all(model, seq, users)
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)  # W starts at zero: the model without them
    model.project.kernel[...] = jax.random.normal(jax.random.key(1), model.project.kernel.shape)
    scores = score_all(model, seq, users)
    assert not np.allclose(scores[0], scores[1], atol=1e-4)  # same history, different user
    items = jnp.array([[1, 4], [1, 4]])
    np.testing.assert_allclose(score_items(model, seq, items, users), scores[:, [1, 4]], rtol=1e-5, atol=1e-5)
    batch = {"inputs": seq, "targets": jnp.array([[0, 2, 3, 4], [0, 2, 3, 4]]), "users": users}
    loss_fn = next_item_loss("ce", 1)
    losses = [
        training_loss(model, {k: v[i : i + 1] for k, v in batch.items()}, loss_fn, jax.random.key(0), nnx.Rngs(0))
        for i in (0, 1)
    ]
    assert not np.isclose(losses[0], losses[1])
    config = copy.deepcopy(TINY)
    config["model"].update(name=name, user_features=True)
    config["data"]["item_features"] = str(fake_movielens(tmp_path / "ml"))
    results = train_and_evaluate(to_config(config), tmp_path / "run")
    assert np.isfinite(results["train_loss"]) and 0 <= results["test"]["full"]["NDCG@10"] <= 1
