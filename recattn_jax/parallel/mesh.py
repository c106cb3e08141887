"""The device mesh from `mesh.data` x `mesh.model`, and where each array of a run lives on it.

Axis legend: `data` shards the batch (users / training rows), `model` shards by rows the variables
marked as item rows where they are created (recattn_jax/layers/item_rows.py: item embeddings, output
tables, the side-feature rows fused with them, pop's counts), and nothing else. An item table has I+1
rows (0 = padding); marked variables are padded with zero rows to a multiple of the `model` axis, and
the pad rows (ids > I) are masked wherever items are candidates (losses, ranking), so they never
compete and get no gradient.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Shaped

from recattn_jax.config import Config, MeshConfig
from recattn_jax.errors import ConfigError
from recattn_jax.layers.item_rows import is_item_rows
from recattn_jax.parallel.process_share import ProcessShare

AXES = ("data", "model")


def make_mesh(config: MeshConfig) -> Mesh:
    """A (data, model) mesh over the first data*model devices of every process (model-major within a process)."""
    devices = jax.devices()
    model = config.model
    data = config.data if config.data is not None else len(devices) // max(model, 1)
    if model < 1 or data < 1 or data * model > len(devices):
        raise ConfigError(
            f"mesh.data={config.data} mesh.model={config.model}: needs data*model <= {len(devices)} devices, both >= 1"
        )
    return Mesh(np.asarray(devices[: data * model]).reshape(data, model), AXES)


def padded_rows(num_items: int, model: int) -> int:
    """I+1 item rows (0 = padding) rounded up to a multiple of the `model` axis."""
    return -(-(num_items + 1) // model) * model


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


@dataclasses.dataclass(frozen=True)
class ParallelLayout:
    """The mesh of a run and the shardings of its state, batches and evaluation arrays."""

    mesh: Mesh
    num_items: int

    @classmethod
    def from_config(cls, config: Config, num_items: int) -> ParallelLayout | None:
        """None for one device in one process: the single-device code path, bit for bit."""
        mesh = make_mesh(config.mesh)
        if mesh.size == 1 and jax.process_count() == 1:
            return None
        data = mesh.shape["data"]
        for key, value in (("train.batch_size", config.train.batch_size), ("eval.batch_size", config.eval.batch_size)):
            if value % data:
                raise ConfigError(f"{key}={value} must be a multiple of mesh.data={data}")
        return cls(mesh, num_items)

    @property
    def rows(self) -> int:
        return padded_rows(self.num_items, self.mesh.shape["model"])

    def sharding(self, *spec) -> NamedSharding:
        return NamedSharding(self.mesh, P(*spec))

    def pad_items(self, model: nnx.Module) -> None:
        """Append zero rows to every variable of `model` marked as item rows (in place), up to a multiple of
        the `model` axis: `rows` for an [I+1, ...] table, more for one with extra rows (BERT4Rec's [mask])."""
        model_axis = self.mesh.shape["model"]

        def pad(variable):
            if not is_item_rows(variable):
                return variable
            table = variable[...]
            extra = -table.shape[0] % model_axis
            if extra == 0:
                return variable
            return variable.replace(jnp.concatenate([table, jnp.zeros((extra, *table.shape[1:]), table.dtype)]))

        nnx.update(model, jax.tree.map(pad, nnx.state(model), is_leaf=_is_variable))

    def fit_rows(self, table: Shaped[Array, "I ..."]) -> Shaped[Array, "R ..."]:
        """An [I+1, ...] item table (e.g. BERT4Rec's, cut from a table with a [mask] row) zero-padded to `rows`."""
        extra = self.rows - table.shape[0]
        if extra == 0:
            return table
        return jnp.concatenate([table, jnp.zeros((extra, *table.shape[1:]), table.dtype)])

    def state_shardings(self, state: nnx.State) -> nnx.State:
        """`state`'s structure with a NamedSharding per array: the variables marked as item rows (and the
        optimizer moments of marked parameters) row-sharded over `model`, everything else replicated."""
        model_axis = self.mesh.shape["model"]

        def spec(variable):
            if not _is_variable(variable):
                raise TypeError(
                    f"state_shardings needs an nnx.State (its variables carry the item-row marks), "
                    f"not {type(variable).__name__} leaves (a pure dict?)"
                )
            if not is_item_rows(variable):
                return variable.replace(self.sharding())
            if variable.shape[0] % model_axis:
                raise ValueError(
                    f"an item-row variable of shape {variable.shape} has rows that are not a multiple of "
                    f"mesh.model={model_axis}: pad the model's item rows first (ParallelLayout.pad_items)"
                )
            return variable.replace(self.sharding("model"))

        return jax.tree.map(spec, state, is_leaf=_is_variable)

    def place_state(self, state):
        return jax.tree.map(place_global, state, self.state_shardings(state))

    @functools.cached_property
    def share(self) -> ProcessShare:
        """The `data` positions of this process's devices: the blocks of every batch it reads."""
        return ProcessShare.of(self.mesh)

    def place_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows of a batch (`share.rows`; all rows in one process) as the global batch
        sharded over `data`."""
        sharding = self.sharding("data")
        return {
            k: jax.make_array_from_process_local_data(sharding, v, (self.share.global_rows(len(v)), *v.shape[1:]))
            for k, v in batch.items()
        }

    def replicate(self, value):
        return place_global(value, self.sharding())


def place_global(value, sharding: NamedSharding) -> jax.Array:
    """A global array from a host value every process holds in full; each process fills its own devices."""
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(value: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-process) global array as numpy, on every process."""
    if value.is_fully_addressable:
        return np.asarray(value)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=True))


def batch_placement(layout: ParallelLayout | None):
    """(f(global batch row indices) -> this process's rows of them, f(those rows' arrays) -> the batch on the
    mesh's `data` axis); both the identity without a layout (one device in one process)."""
    if layout is None:
        return (lambda idx: idx), (lambda batch: batch)
    return layout.share.rows, layout.place_batch
