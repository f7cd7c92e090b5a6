"""Data parallelism: a 1-D device mesh, shardings, and batch placement.

The state is replicated and the global batch is split along a 'data' mesh
axis; `jax.jit` with these shardings lets XLA insert the gradient all-reduces
(GSPMD), so one program serves 1 CPU, 8 TPU cores or several hosts. BatchNorm
statistics are computed over the global batch, which is what makes N devices
numerically equal to 1.
"""

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device JAX sees)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, field: str = 'batch_size') -> None:
  """Raises ValueError if the global batch cannot be split evenly over devices."""
  n = mesh.devices.size
  if batch_size % n:
    lower = max(n, batch_size // n * n)
    raise ValueError(
        f'config.{field}={batch_size} does not divide over the {n} devices JAX sees: '
        f'use a multiple of {n} (e.g. --config.{field}={lower} or {lower + n}).')


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Places a host-local global batch on the mesh, split along the batch axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def with_sharding(abstract_tree, sharding: jax.sharding.Sharding):
  """Attaches `sharding` to every leaf of a `jax.eval_shape` result."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_tree)
