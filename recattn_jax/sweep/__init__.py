"""Sweeps: collecting the runs of a Hydra multirun into one table and its plots."""
