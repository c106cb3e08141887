"""Fixtures shared by every test folder."""

import pytest
from tiny_configs import TINY

from recattn_jax.config import Config, to_config


@pytest.fixture
def tiny_config() -> Config:
    return to_config(TINY)
