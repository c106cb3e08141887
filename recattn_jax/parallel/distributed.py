"""Multi-process start: `jax.distributed.initialize` from the config or the cluster's environment.

`distributed.coordinator=HOST:PORT distributed.num_processes=P distributed.process_id=I` start
process I of P explicitly; `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID` do the
same from the environment, and `distributed.enabled=true` lets JAX detect the cluster (SLURM, Open MPI,
...). Must run before the first JAX computation. On CPU, cross-process collectives use gloo.
"""

from __future__ import annotations

import os

import jax

from recattn_jax.config import DistributedConfig
from recattn_jax.errors import ConfigError


def initialize(config: DistributedConfig) -> bool:
    """Join the process group when one is configured; returns whether this run is multi-process."""
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    coordinator = config.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = config.num_processes or _env_int("JAX_NUM_PROCESSES")
    process_id = config.process_id if config.process_id is not None else _env_int("JAX_PROCESS_ID")
    if coordinator is None and not config.enabled:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ConfigError("distributed.num_processes / process_id need distributed.coordinator=HOST:PORT")
        return False
    # CPU devices all-reduce across processes through gloo (affects the CPU client only)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return jax.process_count() > 1


def is_primary() -> bool:
    """Process 0 writes results and logs; the others only compute."""
    return jax.process_index() == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None
