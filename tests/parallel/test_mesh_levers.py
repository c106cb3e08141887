"""Which loss levers a mesh runs: loss.temperature and loss.exclude_seen (the item-sharded CE has both, checked
against one device in multidevice_checks); the uniform sampler is refused by name."""

import pytest

from recattn_jax.config_checks import check_levers_fit_mesh
from recattn_jax.errors import ConfigError


def test_a_mesh_takes_temperature_and_exclude_seen_not_the_uniform_sampler(tiny_config):
    tiny_config.loss.temperature, tiny_config.loss.exclude_seen = 0.5, True
    check_levers_fit_mesh(tiny_config)
    tiny_config.loss.name, tiny_config.loss.sampler = "sampled_softmax", "uniform"
    tiny_config.loss.temperature, tiny_config.loss.exclude_seen = 1.0, False
    with pytest.raises(ConfigError, match=r"loss.sampler=uniform runs on one device only"):
        check_levers_fit_mesh(tiny_config)
