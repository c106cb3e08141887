"""Which loss levers a mesh runs: loss.temperature (the item-sharded CE scales the logits, checked against one
device in multidevice_checks.check_sharded_ce); loss.exclude_seen is refused by name."""

import pytest

from recattn_jax.config_checks import check_levers_fit_mesh
from recattn_jax.errors import ConfigError


def test_a_mesh_takes_temperature_and_refuses_exclude_seen(tiny_config):
    tiny_config.loss.temperature = 0.5
    check_levers_fit_mesh(tiny_config)
    tiny_config.loss.exclude_seen = True
    with pytest.raises(ConfigError, match=r"loss.exclude_seen runs on one device only .* loss.exclude_seen=false"):
        check_levers_fit_mesh(tiny_config)
