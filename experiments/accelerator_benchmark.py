r"""Times every config's training step in one run and writes one JSON file: for a lent GPU/TPU.

  python -m experiments.accelerator_benchmark --out=accel.json            # <= 8 minutes
  python -m experiments.accelerator_benchmark --out=smoke.json --smoke    # tiny configs, CI
  python -m experiments.accelerator_benchmark --list                      # the entries, no run

The entries: the LatentGAN-AE step of configs/mnist.py:paper, chairs.py and
celeba.py in both explicit `config.model.decoder_upsample_conv` orders
('project_first', 'upsample_first'), then one config of each baseline method,
each at its configured batch size, on every device JAX sees
(`lgae.benchmark.benchmark_step`: synthetic device-resident batches, XLA's FLOP
count of the compiled step). Each entry records its config, method, batch,
ms/step, GFLOP/step, achieved GFLOP/s and compile seconds; the file also
holds the device kind, platform, device count, versions, the total wall time
and, per LatentGAN-AE config, which order was faster (what
`decoder_upsample_conv='auto'` should pick on this platform).

Entries run one after another in this process, within --budget_s: once the
time used plus the longest entry so far would pass it, the remaining entries
are recorded as skipped, with the reason. An entry that fails (out of memory,
a batch that does not divide over the devices) is recorded with its error and
the rest still run. The file is rewritten (atomically) after every entry, so
a run cut short keeps what it measured; `complete` is true once all are done.

Nothing here imports TensorFlow: it needs only jax, flax, optax,
orbax-checkpoint, numpy, scikit-learn, ml-collections and absl-py.
`--smoke` takes each config's ':smoke' variant, times 2 steps per entry and
compiles at XLA's lowest optimisation level: a check that the script works
(CI, on CPU), whose figures mean nothing.
"""

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jaxlib
import ml_collections
from absl import flags

from configs import (aae_mnist, beta_vae_dsprites, celeba, cg_aae_mnist, chairs, infogan_mnist,
                     infovaegan_mnist, latent_stats_vae_mnist, mnist, wae_dsprites)
from experiments import cli
from lgae import benchmark
from lgae.core import config_validation
from lgae.nets import conv

_OUT = flags.DEFINE_string('out', None, 'The JSON file to write (rewritten after every entry).')
_SMOKE = flags.DEFINE_bool('smoke', False, "Each config's ':smoke' variant, 2 steps per entry: a "
                           'CPU check of the script itself; its figures mean nothing.')
_BUDGET_S = flags.DEFINE_float('budget_s', 480.0, 'Wall-time budget in seconds, counted from the '
                               'start of the run (after imports); entries that would pass it '
                               'are skipped and recorded so.')
_ONLY = flags.DEFINE_list('only', [], 'Run only these entries (names as --list prints them), '
                          'e.g. to rerun the ones a budget skipped.')
_LIST = flags.DEFINE_bool('list', False, 'Print the entries (name, config, method, batch) and '
                          'exit without running them.')

# The LatentGAN-AE's configs: each is timed in both explicit decoder orders.
_LGAE_CONFIGS = {'mnist': mnist, 'chairs': chairs, 'celeba': celeba}
_ORDERS = tuple(order for order in conv.DECODER_UPSAMPLE_CONV if order != 'auto')
# One config per baseline method (its configured networks and batch size).
_BASELINE_CONFIGS = {
    'infogan_mnist': infogan_mnist,
    'aae_mnist': aae_mnist,
    'cg_aae_mnist': cg_aae_mnist,
    'infovaegan_mnist': infovaegan_mnist,
    'beta_vae_dsprites': beta_vae_dsprites,
    'wae_dsprites': wae_dsprites,
    'latent_stats_vae_mnist': latent_stats_vae_mnist,
}
# Steps per entry: the smoke form runs 1 warm-up step and 1 timed step.
_FULL_STEPS = {'num_steps': 20, 'repeats': 3, 'num_warmup': 3, 'max_warmup': 20}
_SMOKE_STEPS = {'num_steps': 1, 'repeats': 1, 'num_warmup': 1, 'max_warmup': 0}


def _config(module, smoke: bool, variant: str | None = None) -> ml_collections.ConfigDict:
  if smoke:
    return module.get_config('smoke')
  return module.get_config(variant) if variant else module.get_config()


def _order(config: ml_collections.ConfigDict) -> str | None:
  """The decoder order the config's step runs ('auto' resolved here), or None if it has none."""
  value = config.get('model', {}).get('decoder_upsample_conv')
  return None if value is None else conv.resolve_decoder_upsample_conv(value)


def entries(smoke: bool) -> list[tuple[dict[str, Any], ml_collections.ConfigDict]]:
  """(description, config) of every entry, in run order."""
  found = []
  suffix = ':smoke' if smoke else ''
  for name, module in _LGAE_CONFIGS.items():
    for order in _ORDERS:
      # The paper's networks and joint step (configs/mnist.py's default is the
      # two-stage :best, whose teacher needs umap-learn; its step is the same).
      config = _config(module, smoke, 'paper')
      config.model.decoder_upsample_conv = order
      found.append(({'name': f'{name}/{order}',
                     'config': f'configs/{name}.py{suffix or ":paper"}'}, config))
  for name, module in _BASELINE_CONFIGS.items():
    found.append(({'name': name, 'config': f'configs/{name}.py{suffix}'}, _config(module, smoke)))
  for info, config in found:
    info.update(method=config.model_name, batch_size=config.batch_size,
                decoder_upsample_conv=_order(config))
  return found


def _measure(config: ml_collections.ConfigDict, steps: dict[str, int]) -> Callable[[], dict]:
  def measure():
    # The checks experiments.main makes, bar the dataset's (which would read tfds metadata).
    config_validation.validate(config, num_devices=jax.device_count(), check_dataset=False)
    return benchmark.benchmark_step(config, **steps)
  return measure


def _finite(value):
  """JSON has no NaN or infinity: such a figure (e.g. no FLOP count from XLA) becomes null."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_finite(v) for v in value]
  return value


def write_json_atomically(path: str, payload: dict) -> None:
  """Writes `payload` to a temporary file beside `path`, then renames it over `path`."""
  directory, name = os.path.split(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f'.{name}.tmp-', dir=directory)
  try:
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, 'w') as f:
      json.dump(_finite(payload), f, indent=2, allow_nan=False)
      f.write('\n')
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def faster_orders(records: list[dict]) -> dict[str, dict]:
  """Per LatentGAN-AE config timed in both orders: the faster one and by how much."""
  by_config: dict[str, dict[str, float]] = {}
  for record in records:
    if record.get('status') == 'ok' and '/' in record['name']:
      config, order = record['name'].split('/')
      by_config.setdefault(config, {})[order] = record['ms_per_step']
  faster = {}
  for config, times in by_config.items():
    if set(times) == set(_ORDERS):
      best, other = sorted(_ORDERS, key=times.get)
      faster[config] = {'order': best, 'ms_per_step': times,
                        'speedup': times[other] / times[best]}
  return faster


def _check_out(path: str | None) -> None:
  if not path:
    cli.fail('--out is required: the JSON file to write (e.g. --out=accel.json).')
  if os.path.isdir(path):
    example = os.path.join(path, 'accel.json')
    cli.fail(f'--out={path} is a directory; give a file name, e.g. --out={example}.')
  directory = os.path.dirname(os.path.abspath(path))
  if os.path.exists(directory) and not os.path.isdir(directory):
    cli.fail(f'--out={path}: {directory} is a file, not a directory.')
  if not os.path.isdir(directory):
    cli.fail(f'--out={path}: the directory {directory} does not exist.')
  if not os.access(directory, os.W_OK | os.X_OK) or directory.startswith('/proc'):
    cli.fail(f'--out={path}: cannot write into {directory}; choose a directory you can write to.')


def _compile_fast() -> None:
  """Smoke runs compile at XLA's lowest backend optimisation level: half the compile time on CPU.

  Set before JAX starts its backend, which reads XLA_FLAGS once; an explicit
  setting in XLA_FLAGS wins.
  """
  xla_flags = os.environ.get('XLA_FLAGS', '')
  if 'xla_backend_optimization_level' not in xla_flags:
    os.environ['XLA_FLAGS'] = f'{xla_flags} --xla_backend_optimization_level=0'.strip()


def main(argv):
  start = time.perf_counter()
  if _SMOKE.value:
    _compile_fast()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])} (flags are --out, --smoke, --budget_s, '
             '--only, --list).')
  if not _BUDGET_S.value > 0 or not math.isfinite(_BUDGET_S.value):
    cli.fail(f'--budget_s={_BUDGET_S.value} must be a finite number of seconds > 0.')
  smoke = _SMOKE.value
  found = entries(smoke)
  names = [info['name'] for info, _ in found]
  unknown = [name for name in _ONLY.value if name not in names]
  if unknown:
    cli.fail(f'--only: no entry named {", ".join(unknown)}; the entries are {", ".join(names)}.')
  if _ONLY.value:
    found = [(info, config) for info, config in found if info['name'] in _ONLY.value]
  if _LIST.value:
    for info, _ in found:
      print(f'{info["name"]}\t{info["config"]}\t{info["method"]}\tbatch {info["batch_size"]}\t'
            f'{info["decoder_upsample_conv"] or "-"}')
    return
  _check_out(_OUT.value)

  devices = jax.devices()
  payload = {
      'command': ' '.join(['python -m experiments.accelerator_benchmark', *sys.argv[1:]]),
      'smoke': smoke,
      'device_kind': devices[0].device_kind,
      'platform': devices[0].platform,
      'device_count': len(devices),
      'process_count': jax.process_count(),
      'jax_version': jax.__version__,
      'jaxlib_version': jaxlib.__version__,
      'budget_s': _BUDGET_S.value,
      'steps': _SMOKE_STEPS if smoke else _FULL_STEPS,
      'auto_decoder_upsample_conv': conv.resolve_decoder_upsample_conv('auto'),
      'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
      'complete': False,
      'entries': [dict(info, status='pending') for info, _ in found],
  }

  def write(records):
    payload['entries'] = records + payload['entries'][len(records):]
    payload['faster_decoder_upsample_conv'] = faster_orders(records)
    payload['total_wall_s'] = time.perf_counter() - start
    write_json_atomically(_OUT.value, payload)

  write([])   # Before anything compiles: a path that cannot be written fails now.
  # The yardstick: one device's float32 matmul GFLOP/s, measured in this run.
  peak = benchmark.matmul_peak(256 if smoke else None, num_calls=1 if smoke else 10,
                               repeats=1 if smoke else 3)
  payload['matmul_peak'] = peak
  peak_all_devices = peak['gflops'] * len(devices)

  def with_fraction(records):
    for record in records:
      if record.get('status') == 'ok' and 'achieved_gflops' in record:
        record['fraction_of_matmul_peak'] = record['achieved_gflops'] / peak_all_devices
    return records

  steps = _SMOKE_STEPS if smoke else _FULL_STEPS
  records = benchmark.run_within_budget(
      [(info, _measure(config, steps)) for info, config in found],
      budget_s=_BUDGET_S.value, on_record=lambda records: write(with_fraction(records)),
      started=start)
  payload['complete'] = True
  write(with_fraction(records))
  counts = {s: sum(r['status'] == s for r in records) for s in ('ok', 'error', 'skipped')}
  print(f'{_OUT.value}: {counts["ok"]} entries timed, {counts["error"]} failed, '
        f'{counts["skipped"]} skipped, {time.perf_counter() - start:.1f} s', flush=True)


if __name__ == '__main__':
  cli.run(main)
