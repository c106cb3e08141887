"""Fixtures and settings shared by every test folder.

Hypothesis profiles: tests/hypothesis_profiles.py (HYPOTHESIS_PROFILE=ci, the default, or thorough).
Compiled XLA programs are cached on disk for the session: tests build the same tiny step in many
places, and each new closure would otherwise compile it again.
"""

import tempfile

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import jax
import pytest
from tiny_configs import TINY

from recattn_jax.config import Config, to_config

_CACHE = tempfile.mkdtemp(prefix="recattn-jax-cache-")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def tiny_config() -> Config:
    return to_config(TINY)
