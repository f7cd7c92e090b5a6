"""Throughput of the combined step and of the input pipeline, measured apart.

The step is timed after compilation and warm-up on a device-resident batch,
so the figure is the step alone; the input pipeline is timed on its own
iterator. FLOPs come from XLA's cost analysis of the compiled step.
"""

import functools
import resource
import time

import jax
import ml_collections
import numpy as np

from lgae.core import host_memory
from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.core import state as state_lib
from lgae.data import input_pipeline


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


def benchmark_input(config: ml_collections.ConfigDict, *, num_batches: int = 200,
                    num_warmup: int = 20) -> dict[str, float]:
  """Images/s delivered by the training input pipeline (host numpy batches)."""
  input_pipeline.configure_tensorflow()
  batches = input_pipeline.train_iterator(config)
  for _ in range(num_warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(batches)
  seconds = time.perf_counter() - start
  return {'input_images_per_sec': num_batches * config.batch_size / seconds}
