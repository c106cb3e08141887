"""Event types for the synthetic data (`data.synthetic.events=true`): each interaction a click or a purchase.

An interaction is a "purchase" when the user's next item is a sequel of it (the generator's
short-range branch, data/synthetic.py), a "click" otherwise; a share EVENT_NOISE of the labels is
flipped. So the event type carries signal a model can use: after a purchase the next item is most
often a sequel of the purchased one, after a click it is most often drawn from the user's taste.
A user's last interaction has no next item: a click (before the flips).
"""

from __future__ import annotations

import numpy as np

EVENT_NOISE = 0.1  # share of the event labels flipped at random
EVENT_NAMES = np.asarray(["click", "purchase"])


def synthetic_events(users: np.ndarray, from_sequel: np.ndarray, seed: int) -> np.ndarray:
    """[E] "click" / "purchase" per interaction of user-grouped `users`, from generate_synthetic_with_sequels."""
    same_user_next = np.zeros(len(users), dtype=bool)
    same_user_next[:-1] = users[1:] == users[:-1]
    next_is_sequel = np.zeros(len(users), dtype=bool)
    next_is_sequel[:-1] = from_sequel[1:]
    purchase = same_user_next & next_is_sequel
    flip = np.random.default_rng([seed, 7]).random(len(users)) < EVENT_NOISE  # its own stream: items unchanged
    return EVENT_NAMES[(purchase ^ flip).astype(np.int64)]
