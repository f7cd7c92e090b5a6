"""Data parallelism: a 1-D device mesh, shardings, and batch placement.

The state is replicated and the global batch is split along a 'data' mesh
axis; `jax.jit` with these shardings lets XLA insert the gradient all-reduces
(GSPMD), so one program serves 1 CPU, 8 TPU cores or several hosts. BatchNorm
statistics are computed over the global batch, which is what makes N devices
numerically equal to 1.

Several processes (hosts) run the same program on JAX's own distributed
runtime (`initialize_distributed`): the mesh spans every process's devices,
each process feeds only its rows of every global batch (`process_rows`,
`shard_batch`), and results come back to every process whole (`to_host`).
"""

import os
import socket
from collections.abc import Callable, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lgae import errors

DATA_AXIS = 'data'


class DistributedSetupError(errors.UserError, ValueError):
  """The multi-process flags do not describe a run; the message says what to give."""


def cluster_environment() -> str | None:
  """The launcher this process was started by, if it starts several; else None.

  Only launchers whose environment tells JAX every process's place count:
  an `srun` step of more than one task (SLURM), `mpirun -n N` with N > 1
  (Open MPI), or a multi-host Cloud TPU slice that names its workers. A
  plain `python ...` (also inside a one-task SLURM job) is one process.
  """
  env = os.environ
  slurm = ('SLURM_JOB_ID', 'SLURM_STEP_NODELIST', 'SLURM_NTASKS', 'SLURM_PROCID', 'SLURM_LOCALID')
  if all(k in env for k in slurm) and int(env.get('SLURM_STEP_NUM_TASKS',
                                                  env['SLURM_NTASKS'])) > 1:
    return 'SLURM'
  if 'OMPI_MCA_orte_hnp_uri' in env and int(env.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'Open MPI'
  workers = env.get('TPU_WORKER_HOSTNAMES') or env.get('TPU_PROCESS_ADDRESSES') or ''
  if len([w for w in workers.split(',') if w]) > 1 or env.get('MEGASCALE_COORDINATOR_ADDRESS'):
    return 'Cloud TPU'
  return None


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins JAX's distributed runtime when this run spans several processes.

  Must run before anything uses JAX devices. Either all three arguments are
  given (the same address and count on every process, ids 0..N-1), or none:
  then JAX reads them from the launcher if `cluster_environment()` finds one,
  and otherwise this is a single-process run and nothing happens. (A Cloud
  TPU slice whose workers are not named in the environment still runs
  multi-host: its TPU runtime connects the hosts by itself.)

  Raises:
    DistributedSetupError: only some of the three are given, or they disagree.
  """
  given = {'--coordinator_address': coordinator_address, '--num_processes': num_processes,
           '--process_id': process_id}
  if any(v is not None for v in given.values()):
    missing = [name for name, v in given.items() if v is None]
    if missing:
      raise DistributedSetupError(
          f'{", ".join(missing)} missing: give --coordinator_address=HOST:PORT, '
          '--num_processes=N and --process_id=I together (the same address and N on every '
          'process, I = 0..N-1), or none of them for one process.')
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise DistributedSetupError(
          f'--process_id={process_id} with --num_processes={num_processes}: the processes '
          f'of a run are numbered 0..N-1 (N >= 1), each started with its own id.')
    host, _, port = coordinator_address.rpartition(':')
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise DistributedSetupError(
          f'--coordinator_address={coordinator_address!r}: give HOST:PORT, the address of '
          'process 0 and a free port (e.g. 10.0.0.1:8476), the same on every process.')
    if num_processes == 1:
      return   # One process needs no coordinator.
    try:
      socket.getaddrinfo(host.strip('[]'), int(port))
    except (socket.gaierror, UnicodeError) as e:
      raise DistributedSetupError(
          f'--coordinator_address={coordinator_address!r}: cannot resolve {host!r} ({e}); give '
          'the address of process 0 as every process can reach it.') from None
  else:
    launcher = cluster_environment()
    if launcher is None:
      return
    logging.info('Started by %s: joining its processes (jax.distributed.initialize).', launcher)
  # CPU processes exchange gradients over gloo (TCP); the default of older
  # JAX versions is no cross-process collectives at all. Leaves 'mpi' alone.
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def process_shard() -> dict[str, int]:
  """This process's place, as the input pipeline's iterators take it."""
  return {'process_index': jax.process_index(), 'process_count': jax.process_count()}


def any_process(flag: bool) -> bool:
  """Whether `flag` is true on some process (every process gets the same answer).

  A collective: every process must call it at the same point of the program.
  """
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def to_host(tree):
  """Every leaf's whole (global) value as numpy, on every process.

  Replicated arrays are read from a local copy; batch-sharded ones are
  gathered from all processes (a collective then: every process calls it).
  """
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))
  return jax.tree.map(one, tree)


def broadcast_from_process_0(x: np.ndarray) -> np.ndarray:
  """Process 0's value of `x` on every process (a collective with several)."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(x)))


def put_replicated(tree, mesh: Mesh):
  """Host values that every process holds alike -> arrays replicated on `mesh`."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_callback(np.shape(x), sharding,
                                             lambda index, x=np.asarray(x): x[index]), tree)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process).

  The default orders devices by process, so process p holds a contiguous
  block of the batch axis: rows [p * B / P, (p + 1) * B / P) of a global batch
  of B, which is the slice the input pipeline gives it.
  """
  if devices is None:
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  devices = list(devices)
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
    processes = {d.process_index for d in mesh.devices.flat}
    where = (f'the {n} devices JAX sees' if len(processes) == 1 else
             f'the {n} devices of {len(processes)} processes ({len(processes)} x '
             f'{n // len(processes)} local devices)')
    raise ValueError(
        f'config.{field}={batch_size} does not divide over {where}: '
        f'use a multiple of {n} (e.g. --config.{field}={lower} or {lower + n}).')


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Places this process's rows of a global batch on the mesh, split along the batch axis.

  With one process the rows are the whole batch; with several, process p
  gives rows [p * B / P, (p + 1) * B / P) (the input pipeline's
  `process_index`/`process_count` slices) and the global batch is their
  concatenation in process order.
  """
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def with_sharding(abstract_tree, sharding: jax.sharding.Sharding):
  """Attaches `sharding` to every leaf of a `jax.eval_shape` result."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_tree)


def jit_step(step: Callable, mesh: Mesh, *, batched: bool = True):
  """Jits `step(state, data) -> (state, metrics)` for `mesh`, the state donated.

  The state (and the metrics) are replicated; `data` is a global batch split
  over the devices when `batched`, else replicated (a step that gathers its
  own batches from it splits them itself).
  """
  data = batch_sharded(mesh) if batched else replicated(mesh)
  return jax.jit(step, in_shardings=(replicated(mesh), data),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)
