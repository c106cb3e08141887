"""Kernel tests: reproducible Hypothesis settings and the shared random generator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

# reproducible CI: derandomized examples, no per-example deadline (Triton's interpreter is slow)
settings.register_profile("kernels", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("kernels")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
