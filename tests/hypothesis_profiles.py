"""Hypothesis profiles: `ci` (the default: derandomized, the example counts written in the tests) and
`thorough` (HYPOTHESIS_PROFILE=thorough: random seeds, 8x the examples), run before landing kernel or
data changes."""

import os

from hypothesis import settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("thorough", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A test's example count under the active profile."""
    return n * 8 if PROFILE == "thorough" else n
