"""MovieLens-1M as shipped beside the project (never in it: its license forbids redistribution)."""

import numpy as np
import pytest
from tiny_configs import ML1M

from recattn_jax.config import DataConfig
from recattn_jax.data.load import load_split

pytestmark = pytest.mark.skipif(
    not (ML1M / "ml-1m.txt").exists(),
    reason=f"MovieLens-1M is not redistributable and is absent here ({ML1M / 'ml-1m.txt'})",
)


def test_ml1m_sizes_and_ids_match_the_sasrec_release():
    split = load_split(DataConfig(name="sasrec_txt", path=str(ML1M / "ml-1m.txt")))
    data = split.data
    assert (data.num_users, data.num_items, data.report["interactions"]) == (6040, 3416, 999611)
    np.testing.assert_array_equal(data.item_ids[1:], np.arange(1, 3417))  # SASRec ids are kept as they are
    assert len(split.eval_users) == 6040 and min(len(s) for s in data.sequences) >= 3
    assert data.report["dropped_by_k_core"]["interactions"] == 0


@pytest.mark.parametrize("whole_history", [False, True])  # sasrec_ml1m_ce's rows, sasrec_ml1m_best's rows
def test_ml1m_plain_batches_at_max_len_200_are_never_cut(whole_history):
    """Cutting plain-shuffle batches to their longest row's bucket changes nothing on ML-1M: every batch of
    seeds 0-2 in their first 150 epochs holds a row longer than 150, so it keeps all 200 positions (and the
    runs cached before the cut replay bit for bit)."""
    from recattn_jax.data.batches import next_item_arrays
    from recattn_jax.data.bucketing import training_batches

    split = load_split(DataConfig(name="sasrec_txt", path=str(ML1M / "ml-1m.txt")))
    arrays = next_item_arrays(split.train_sequences, 200, whole_history=whole_history)
    lengths = {
        length
        for seed in range(3)
        for epoch in range(1, 151)
        for _, length in training_batches(arrays, 128, 200, np.random.default_rng([seed, epoch]), bucketing=False)
    }
    assert lengths == {200}
