"""Fixtures of the training tests."""

import dataclasses

import pytest


@pytest.fixture
def two_epochs(tiny_config):
    """4 steps per epoch, 2 epochs, an evaluation after each, a checkpoint every 3 steps."""
    train = dataclasses.replace(tiny_config.train, epochs=2, max_steps=None, ckpt_every_steps=3, log_every_steps=2)
    return dataclasses.replace(tiny_config, train=train)
