"""Throughput of the combined step and of the input pipeline, measured apart.

The step is timed after compilation and warm-up on a device-resident batch,
so the figure is the step alone; the input pipeline is timed on its own
iterator. FLOPs come from XLA's cost analysis of the compiled step.

Nothing here imports TensorFlow: the step runs on synthetic batches, and the
input pipeline's iterator is made by the caller (`experiments.benchmark`
builds it only when it times the pipeline), so the step benchmarks run where
only jax, flax, optax, orbax-checkpoint, numpy and scikit-learn are installed
(a lent GPU/TPU: `experiments.accelerator_benchmark`).
"""

import functools
import gc
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from lgae.core import host_memory
from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.core import state as state_lib


def _example_batch(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """Random images of the configured shape (the step's cost does not depend on values)."""
  size, channels = config.dataset.image_size, config.dataset.channels
  rng = np.random.default_rng(config.seed)
  images = rng.uniform(-1, 1, (config.batch_size, size, size, channels)).astype(np.float32)
  return {'image': images, 'label': np.zeros((config.batch_size,), np.int32)}


# Warm-up ends after this many steps in a row with fewer page faults than this.
_QUIET_STEP_FAULTS = 1000
_QUIET_STEPS_IN_A_ROW = 3


def _minor_faults() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def benchmark_step(config: ml_collections.ConfigDict, *, num_steps: int = 20,
                   num_warmup: int = 3, max_warmup: int = 20,
                   repeats: int = 3) -> dict[str, float]:
  """Times the jitted combined step on all devices.

  Warm-up runs at least `num_warmup` steps and then goes on (up to
  `max_warmup`) until `_QUIET_STEPS_IN_A_ROW` steps in a row take fewer than
  `_QUIET_STEP_FAULTS` page faults each.
  Why: the step's buffers (for Chairs, a 1.2 GB temporary beside 0.76 GB of
  donated state) fragment the heap, and glibc grows it, paging in a whole
  temporary's worth of fresh memory, on some of the first ~10 steps until a
  layout that fits is reached. A long training run pays that once; timing
  those steps would charge it to every step.

  Returns:
    ms_per_step (best of `repeats` means of `num_steps` steps), images_per_sec,
    compile_s, gflops_per_step (all devices), achieved_gflops, cpu_ms_per_step (process CPU
    time per step: all threads, a steadier figure on a shared machine),
    minor_faults_per_step (page faults: memory mapped afresh every step; near 0
    when `host_memory`'s malloc settings are in effect), warmup_steps,
    malloc_tuned, devices, batch_size.
  """
  mesh = parallel.make_mesh()
  parallel.check_divisible(config.batch_size, mesh)
  state = state_lib.create_state(config, mesh)
  step_fn = parallel.jit_step(
      functools.partial(method_lib.for_config(config).train_step, config=config), mesh)
  batch = parallel.shard_batch({'image': _example_batch(config)['image']}, mesh)

  start = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  # XLA's cost analysis describes the partitioned program, i.e. one device's share.
  gflops_per_device = float(cost.get('flops', float('nan'))) / 1e9 if cost else float('nan')
  gflops = gflops_per_device * mesh.devices.size

  warmup_steps = quiet_in_a_row = 0
  while warmup_steps < max(num_warmup, max_warmup):
    faults_before = _minor_faults()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    warmup_steps += 1
    quiet = _minor_faults() - faults_before < _QUIET_STEP_FAULTS
    quiet_in_a_row = quiet_in_a_row + 1 if quiet else 0
    if warmup_steps >= num_warmup and quiet_in_a_row >= _QUIET_STEPS_IN_A_ROW:
      break
  walls, cpus, faults = [], [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    faults_before = _minor_faults()
    for _ in range(num_steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    walls.append((time.perf_counter() - wall) / num_steps)
    cpus.append((time.process_time() - cpu) / num_steps)
    faults.append((_minor_faults() - faults_before) / num_steps)
  seconds = min(walls)
  return {
      'ms_per_step': 1e3 * seconds,
      'images_per_sec': config.batch_size / seconds,
      'compile_s': compile_s,
      'gflops_per_step': gflops,
      'achieved_gflops': gflops / seconds,
      'cpu_ms_per_step': 1e3 * min(cpus),
      'minor_faults_per_step': min(faults),
      'warmup_steps': warmup_steps,
      'malloc_tuned': host_memory.is_applied(),
      'devices': mesh.devices.size,
      'batch_size': config.batch_size,
  }


def matmul_peak(size: int | None = None, *, num_calls: int = 10,
                repeats: int = 3) -> dict[str, float]:
  """What one device does on a large float32 matmul: the yardstick for a step's GFLOP/s.

  A step's `achieved_gflops` over this figure is the fraction of the machine's
  practical dense peak it reaches (XLA's own matmul kernel, default precision,
  all the threads XLA:CPU uses). `size` defaults to 2048 on CPU and 8192 on a
  GPU/TPU (big enough to be compute-bound there).

  Returns: gflops (best of `repeats` means of `num_calls` calls), size, ms_per_call.
  """
  device = jax.devices()[0]
  if size is None:
    size = 2048 if device.platform == 'cpu' else 8192
  keys = jax.random.split(jax.random.PRNGKey(0))
  a, b = (jax.device_put(jax.random.normal(k, (size, size), np.float32), device) for k in keys)
  matmul = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(matmul(a, b))   # compile and warm up.
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    out = None
    for _ in range(num_calls):
      out = matmul(a, b)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / num_calls)
  return {'gflops': 2.0 * size ** 3 / best / 1e9, 'size': size, 'ms_per_call': 1e3 * best}


def benchmark_input(batches: Iterator[Any], batch_size: int, *, num_batches: int = 200,
                    num_warmup: int = 20) -> dict[str, float]:
  """Images/s delivered by an input iterator of `batch_size` batches.

  `batches` is e.g. `lgae.data.input_pipeline.train_iterator(config)` (host
  numpy batches); the caller builds it, so that this module needs no TensorFlow.
  """
  for _ in range(num_warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(batches)
  seconds = time.perf_counter() - start
  return {'input_images_per_sec': num_batches * batch_size / seconds}


# An entry: what it is (name, config, ...: copied into its record) and the
# measurement to run (e.g. `benchmark_step` of its config), which returns figures.
Entry = tuple[dict[str, Any], Callable[[], dict[str, Any]]]


def _one_line(error: BaseException, limit: int = 1000) -> str:
  """'<type>: <message>' on one line, cut to `limit` characters (out-of-memory errors are long)."""
  text = ' '.join(f'{type(error).__name__}: {error}'.split()).rstrip(': ')
  return text if len(text) <= limit else text[:limit - 3] + '...'


def run_within_budget(entries: Sequence[Entry], *, budget_s: float,
                      on_record: Callable[[list[dict[str, Any]]], None] = lambda records: None,
                      clock: Callable[[], float] = time.perf_counter,
                      started: float | None = None) -> list[dict[str, Any]]:
  """Runs each entry's measurement in turn, within a wall-time budget; one record per entry.

  A record is the entry's description plus `status`: 'ok' (with the
  measurement's figures and `wall_s`, the entry's whole time, compilation
  included), 'error' (the measurement raised, e.g. out of accelerator memory:
  `error` holds the exception's type and message on one line, and the next
  entries still run) or 'skipped' (`reason`). An entry is skipped, and so is every
  entry after it, when the time used so far plus the longest entry so far
  would pass `budget_s`, so that the whole run stays within the budget.
  `on_record` is called with the records so far after each one (e.g. to
  write them out, so that a run cut short keeps what it measured). The budget
  counts from `started` (a `clock()` reading; default: now).
  """
  start = clock() if started is None else started
  records, longest, skip_reason = [], 0.0, None
  for info, measure in entries:
    record = dict(info)
    used = clock() - start
    if skip_reason is None and used + longest > budget_s:
      skip_reason = (f'time budget: {used:.1f} s of {budget_s:g} s used, and the longest entry '
                     f'so far took {longest:.1f} s')
    if skip_reason is not None:
      record.update(status='skipped', reason=skip_reason)
    else:
      entry_start = clock()
      try:
        figures = measure()
      except Exception as e:  # pylint: disable=broad-except
        record.update(status='error', error=_one_line(e))
      else:
        record.update(status='ok', **figures)
      record['wall_s'] = clock() - entry_start
      longest = max(longest, record['wall_s'])
      # Free the entry's compiled programs and buffers before the next one.
      jax.clear_caches()
      gc.collect()
    records.append(record)
    on_record(list(records))
  return records
