"""ProcessShare: which rows of every batch and which eval users a process reads (no devices needed)."""

import numpy as np

from recattn_jax.parallel.process_share import ProcessShare


def test_rows_are_the_blocks_of_the_process_positions():
    share = ProcessShare(positions=(1, 3), owned=(1, 3), size=4)
    idx = np.arange(100, 108)  # a global batch of 8: blocks of 2 at positions 0..3
    np.testing.assert_array_equal(share.rows(idx), [102, 103, 106, 107])
    assert share.global_rows(4) == 8


def test_eval_users_split_into_parts_and_batches_cover_each_once():
    num_users, batch_size = 10, 8  # parts of 3 users: [0, 3) [3, 6) [6, 9) [9, 10); blocks of 2 per batch
    seen = []
    for position in range(4):
        share = ProcessShare(positions=(position,), owned=(position,), size=4)
        users, parts = share.users(num_users)
        for rows, valid, owned in share.eval_batches(parts, share.part_capacity(num_users), batch_size):
            assert len(rows) == batch_size // 4 and owned.all()
            seen += users[rows[valid]].tolist()
    assert sorted(seen) == list(range(num_users))  # every user once, over all processes


def test_a_replica_position_is_reported_by_its_owner_only():
    share = ProcessShare(positions=(0, 1), owned=(1,), size=2)
    users, parts = share.users(5)
    (rows, valid, owned), *rest = list(share.eval_batches(parts, share.part_capacity(5), 4))
    np.testing.assert_array_equal(users[rows], [0, 1, 3, 4])
    np.testing.assert_array_equal(owned, [False, False, True, True])
    assert len(rest) == 1 and valid.all()
