"""Kernel tests: the shared random generator."""

from __future__ import annotations

import numpy as np
import pytest

# Hypothesis profiles (ci: derandomized, no deadline; thorough) are set in tests/conftest.py


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
