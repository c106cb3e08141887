"""Side features of items and users as vectors: bag-of-words / TF-IDF over text and categories.

`text` (scikit-learn vectorizers), `item_features` (the per-item matrices a model fuses),
`movielens` (ML-1M's movies.dat / users.dat), `table` (a generic item-feature CSV), `load` (what
the config asks for).
"""
