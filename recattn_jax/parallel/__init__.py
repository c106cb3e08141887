"""Beyond one device: the device mesh and shardings, sharded losses and scoring, multi-process start.

With one device and one process none of this is used: `ParallelLayout.from_config` returns None and
training runs the single-device code unchanged.
"""
