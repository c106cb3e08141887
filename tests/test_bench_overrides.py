"""benchmarks' experiment loader takes Hydra overrides on top of an experiment (profile_step.py with a lever)."""

from benchmarks.env_info import experiment_split


def test_experiment_split_applies_overrides():
    loaded = experiment_split(
        "sasrec_ml1m_ce", ["model.attn_dropout=weights", "data=synthetic", "data.synthetic.num_users=40"]
    )
    assert loaded is not None
    config, split = loaded
    assert config.model.attn_dropout == "weights" and config.model.max_len == 200  # the lever and the experiment
    assert config.data.name == "synthetic" and len(split.train_sequences) == 40
