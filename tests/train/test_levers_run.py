"""Every accuracy lever of issue 11 on at once, end to end: the run trains on every window and logs the
learning rate of its schedule. (Each lever's own run is in the slow tier.)"""

import json
import math

import numpy as np

from recattn_jax.data.batches import next_item_arrays
from recattn_jax.data.load import load_split
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.lr_schedule import learning_rate


def test_a_run_with_every_lever_logs_its_schedule(tiny_config, tmp_path):
    t, m, loss = tiny_config.train, tiny_config.model, tiny_config.loss
    t.optimizer, t.weight_decay, t.grad_clip, t.warmup_steps, t.lr_schedule = "adamw", 0.01, 5.0, 2, "cosine"
    t.whole_history, t.max_steps, t.log_every_steps = True, None, 1
    t.bucketing = False  # one batch shape, one compile
    m.ffn, m.tie_output, m.normalize, m.positions, m.init = "swiglu", False, True, "from_oldest", "normal"
    m.residual, m.ffn_mult, m.attn_dropout = "gated", 2, "weights"
    loss.temperature, loss.exclude_seen = 0.1, True

    results = train_and_evaluate(tiny_config, tmp_path)

    split = load_split(tiny_config.data)
    newest_only = next_item_arrays(split.train_sequences, m.max_len).num_rows
    rows = next_item_arrays(split.train_sequences, m.max_len, whole_history=True).num_rows
    assert rows > newest_only  # some tiny users are longer than max_len + 1
    assert results["steps"] == math.ceil(rows / t.batch_size)  # one epoch over every window
    assert np.isfinite(results["train_loss"]) and np.isfinite(results["test"]["full"]["NDCG@10"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["lr"] for r in records if r["kind"] == "train"}
    schedule = learning_rate(t, results["steps"])
    assert logged[1] == float(schedule(1)) and 0 < logged[1] < t.lr  # warming up
    assert logged[results["steps"]] < logged[2]  # decaying after the warmup
    np.testing.assert_allclose([logged[s] for s in sorted(logged)], [float(schedule(s)) for s in sorted(logged)])
