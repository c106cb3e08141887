"""conf/experiment/sasrec_ml1m_best.yaml composes into a valid config with the levers it names."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from recattn_jax.config import register_configs, to_config
from recattn_jax.config_checks import check_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_best_recipe_composes_and_passes_the_checks():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = to_config(compose("config", overrides=["experiment=sasrec_ml1m_best"]))
    check_config(config)
    t, m = config.train, config.model
    assert (t.whole_history, t.optimizer, t.weight_decay, t.grad_clip) == (True, "adamw", 0.01, 5.0)
    assert (m.max_len, m.hidden, m.blocks, m.dropout, config.loss.name) == (200, 128, 2, 0.3, "ce")
    assert config.loss.exclude_seen
    assert (m.layer_norm, m.residual, m.ffn, m.ffn_mult) == ("pre", "gated", "swiglu", 4)  # LiGR blocks, 4D wide
    assert (t.lr_schedule, config.loss.temperature, m.tie_output, m.normalize) == ("constant", 1.0, True, False)
    assert (t.bucketing, t.patience, t.epochs) == (False, 20, 150)  # random batches, longer patience
