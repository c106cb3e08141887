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
