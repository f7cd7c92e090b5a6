"""`train_and_evaluate`: the only training loop, for every method.

It validates the config, builds the models and the sharded state (restoring
the latest checkpoint of `workdir` if there is one), then runs the phases the
method declares (`lgae.core.method.Phase`: by default one jitted step over the
input pipeline), logging, evaluating and checkpointing on schedule.
SIGTERM/SIGINT end the run with a checkpoint at the current step; a non-finite
loss ends it with an error and without checkpointing the bad state.
"""

import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from lgae import errors
from lgae import methods
from lgae.core import checkpointing, config_validation, interrupts, metric_writers, parallel
from lgae.core import method as method_lib
from lgae.core import state as state_lib
from lgae.core import workdir as workdir_lib
from lgae.data import input_pipeline
from lgae.evaluation import classifier as classifier_lib
from lgae.evaluation import run as evaluation


# Under the workdir: what a phase prepared, kept for resumes (`lgae.core.method.Phase`).
PHASE_CACHE = 'phase_cache'


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """A loss became NaN or inf; training stopped before checkpointing it."""


def default_workdir(config: ml_collections.ConfigDict, root: str = 'lgae_runs') -> str:
  """A stable per-config run directory, so re-running the same command resumes.

  The name holds the dataset, the seed and a hash of every field except the
  schedule ones (a longer `num_train_steps` resumes the same run).
  """
  fields = json.loads(config.to_json())
  for name in checkpointing.SCHEDULE_FIELDS:
    fields.pop(name, None)
  digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
  return os.path.join(root, f'{config.dataset.name}_seed{config.seed}_{digest}')


def num_train_steps(config: ml_collections.ConfigDict) -> int:
  """Total steps of the run (`Method.num_train_steps`: epochs, or a method's own count)."""
  return methods.for_config(config).num_train_steps(
      config, input_pipeline.steps_per_epoch(config))


def restore_or_create_state(config, mesh, checkpointer: checkpointing.Checkpointer, models=None,
                            *, allow_new_data: bool = False):
  """The latest checkpoint's state if there is one, else a fresh one (`Method.start_state`).

  `allow_new_data`: resume a run saved with other data (`checkpointing.DATA_FIELDS`).
  """
  method = methods.for_config(config)
  models = models or method.build_models(config)
  if checkpointer.latest_step() is None:
    return method.start_state(state_lib.create_state(config, mesh, models), config, mesh)
  saved = checkpointer.restore_config()
  checkpointing.check_resumable(saved, config, allow_new_data=allow_new_data)
  state = checkpointer.restore_state(state_lib.abstract_state(config, mesh, models))
  logging.info('Resumed from %s at step %d.', checkpointer.directory, int(state.step))
  return state


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                              if jnp.issubdtype(x.dtype, jnp.floating)]))


def _check_finite(pending: list[tuple[int, dict]]) -> list[tuple[int, dict[str, float]]]:
  """Fetches pending per-step metrics; raises on the first non-finite loss."""
  fetched = jax.device_get(pending)
  for step, scalars in fetched:
    for name, value in scalars.items():
      if not np.isfinite(value):
        raise NonFiniteLossError(
            f'{name} became {float(value)} at step {step}; training stopped and this state was '
            'not checkpointed. The latest checkpoint in the workdir is the last good one.')
  return fetched


def _stop_now(stop: interrupts.StopOnSignal, step: int,
              config: ml_collections.ConfigDict) -> bool:
  """Whether the run stops after `step` because a signal arrived.

  One process stops at once. Several must agree on the step (the checkpoint
  they then write together is a collective), and agreeing means waiting for
  each other; they do so at log steps only, where the loop waits for the
  metrics anyway. So a multi-process run stops at the next log step.
  """
  if jax.process_count() == 1:
    return stop.requested
  return step % config.log_every_steps == 0 and parallel.any_process(stop.requested)


def _signal_name(stop: interrupts.StopOnSignal) -> str:
  return stop.signal_name or 'a signal (on another process of this run)'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_new_data: bool = False):
  """Trains (or resumes) the method `config.model_name` described by `config` in `workdir`.

  Args:
    config: a config from `configs/` (validated here before anything compiles).
    workdir: run directory for checkpoints, metrics.jsonl and TensorBoard.
    allow_new_data: resume a run whose checkpoint was trained on another
      dataset or train split (fine-tuning); without it that is refused.

  Returns:
    The final train state.
  """
  started = _start_time()
  # Signals are caught from the very start: a SIGTERM during data checks,
  # restore, compile or classifier training ends the run cleanly too.
  with interrupts.StopOnSignal() as stop:
    return _train_and_evaluate(config, workdir, stop, allow_new_data, started)


_calls_in_this_process = []


def _start_time() -> float:
  """When this call's work began, for the run's timeline.

  The process's start for its first call (a CLI's imports count), the call
  itself for later ones (a notebook that trains again an hour later).
  """
  now = time.time()
  first = not _calls_in_this_process
  _calls_in_this_process.append(now)
  return metric_writers.process_start_time() if first else now


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        stop: interrupts.StopOnSignal, allow_new_data: bool,
                        started: float) -> method_lib.State:
  """`train_and_evaluate`'s body; `stop` says whether SIGTERM/SIGINT arrived."""
  mesh = parallel.make_mesh()
  config_validation.validate(config, num_devices=mesh.devices.size,
                             num_processes=jax.process_count())
  # Every refusal comes before anything is written to the workdir; the workdir's
  # own first (another run, another dataset), then the data (which may download) ...
  workdir_lib.check_usable(workdir)
  _check_existing_checkpoints(workdir, config, allow_new_data)
  input_pipeline.configure_tensorflow()
  input_pipeline.check_available(config)
  # ... and one found later (a donor run, the classifier's data) leaves no trace in a new one.
  with workdir_lib.removed_if_unused(workdir, checkpointing.checkpoint_dir(workdir)):
    with _hold_workdir(workdir):
      return _train(config, workdir, stop, mesh, allow_new_data, started)


@contextlib.contextmanager
def _hold_workdir(workdir: str) -> Iterator[None]:
  """`workdir_lib.hold` for every process of the run, or for none.

  Each process takes its own lock (`workdir_lib.lock_path`). If any of them
  is refused (another run holds the workdir), all stop with the error: a
  lone survivor would wait for its peers at the first collective.
  """
  with contextlib.ExitStack() as held:
    refused = None
    try:
      held.enter_context(workdir_lib.hold(workdir, jax.process_index()))
    except workdir_lib.WorkdirInUseError as e:
      refused = e
    if parallel.any_process(refused is not None):
      raise refused or workdir_lib.WorkdirInUseError(
          f'{os.path.abspath(workdir)} is in use by another run (another process of this run '
          'found it held; its error names the holder). Wait for it to finish, stop it, or use '
          'another --workdir.')
    yield


def _check_existing_checkpoints(workdir: str, config: ml_collections.ConfigDict,
                                allow_new_data: bool) -> None:
  """Raises CheckpointError, reading only, if the workdir holds another config's run."""
  directory = checkpointing.checkpoint_dir(workdir)
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise checkpointing.CheckpointError(
        f'{directory} is a file, not a directory of checkpoints; move it away or use another '
        '--workdir.')
  if not os.path.isdir(directory):
    return
  reader = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    if reader.latest_step() is not None:
      checkpointing.check_resumable(reader.restore_config(), config,
                                    allow_new_data=allow_new_data)
  finally:
    reader.close()


def _train(config: ml_collections.ConfigDict, workdir: str, stop: interrupts.StopOnSignal,
           mesh: jax.sharding.Mesh, allow_new_data: bool, started: float) -> method_lib.State:
  """The run itself, once the config, the data and the workdir have been checked."""
  # Feature extractor for the generation metrics: trained once per data dir
  # and cached; None where the dataset has no classifier recipe.
  classifier = (classifier_lib.get_or_train_classifier(config)
                if config.eval_generation else None)
  method = methods.for_config(config)
  models = method.build_models(config)
  total_steps = num_train_steps(config)
  checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints_to_keep)
  try:
    state = restore_or_create_state(config, mesh, checkpointer, models,
                                    allow_new_data=allow_new_data)
  except BaseException:
    checkpointer.close()   # E.g. a refused donor run: no Orbax thread outlives the error.
    raise
  start_step = int(state.step)
  logging.info('lgae: %s on %d device(s), %d process(es) | steps %d -> %d (%s) | workdir %s',
               config.dataset.name, mesh.devices.size, jax.process_count(), start_step,
               total_steps, 'resumed' if checkpointer.latest_step() is not None else 'fresh',
               os.path.abspath(workdir))
  if start_step >= total_steps:
    logging.info('Nothing to do: the workdir is at step %d >= num_train_steps %d.',
                 start_step, total_steps)
    checkpointer.close()
    return state

  if parallel.any_process(stop.requested):
    # A signal during data checks, classifier training or restore: keep the
    # promise "a checkpoint at the current step". A fresh run has none yet, so
    # its initial state is written (resuming from it equals starting afresh).
    if checkpointer.latest_step() != start_step:
      checkpointer.save(start_step, state, config)
    logging.warning('Received %s before training started: saved a checkpoint at step %d in %s; '
                    're-run the same command to resume.', _signal_name(stop), start_step,
                    checkpointer.directory)
    checkpointer.close()
    return state

  phases = method.phases(config, mesh, total_steps)
  phase_index = 0   # the phase that runs step `start_step`.
  while phases[phase_index].end <= start_step and phase_index + 1 < len(phases):
    phase_index += 1
  # The image pipeline from `start_step`, if any phase from here on reads images.
  batches = (input_pipeline.train_iterator(config, start_step=start_step,
                                           **parallel.process_shard())
             if any(p.prepare is None for p in phases[phase_index:]) else None)
  step_fn, phase_data = None, None   # the running phase's jitted step and prepared input.
  # Every process computes the same metrics, evals and sample grids (they
  # are collectives); process 0 alone writes them.
  writer = (metric_writers.MetricWriter(workdir) if jax.process_index() == 0
            else metric_writers.NoWriter(workdir))
  progress = metric_writers.ProgressLogger(start_step, total_steps)
  # When this process started: the data checks, restore and classifier before
  # the first step count towards a run's time to accuracy (`timeline.jsonl`).
  writer.write_event('start', start_step, process_start=started)
  pending: list[tuple[int, dict]] = []  # per-step metrics still on device.
  window: list[dict[str, float]] = []    # fetched metrics since the last log.
  eval_every = config.eval_every_steps

  def save(step):
    if not bool(_all_finite(state)):
      raise NonFiniteLossError(f'The state became non-finite by step {step}; not checkpointed.')
    checkpointer.save(step, state, config)
    # Written in the background; a failure is reported when the next save or the end waits for it.
    logging.info('checkpoint at step %d: %s', step, os.path.join(checkpointer.directory, str(step)))

  step = start_step
  try:
    while step < total_steps:
      if step_fn is not None and step >= phases[phase_index].end:
        phase_index += 1
        step_fn = None
      if step_fn is None:   # the phase starts (or resumes) here.
        phase = phases[phase_index]
        step_fn = parallel.jit_step(phase.step, mesh, batched=phase.prepare is None)
        if phase.prepare is not None:
          prepare_start = time.time()
          phase_data = phase.prepare(state, os.path.join(workdir, PHASE_CACHE, phase.name))
          writer.write_event('prepared', step, phase=phase.name,
                             seconds=round(time.time() - prepare_start, 3))
          progress.restart_window(step)
        if len(phases) > 1:
          logging.info('Phase %r: steps %d -> %d.', phase.name, step, phase.end)
        first_step_of_phase = step + 1
      data = (parallel.shard_batch(next(batches), mesh) if phases[phase_index].prepare is None
              else phase_data)
      state, step_metrics = step_fn(state, data)
      step += 1
      if step == first_step_of_phase:  # steps/s and ETA exclude the compile.
        jax.block_until_ready(step_metrics)
        progress.restart_window(step)
      pending.append((step, step_metrics))
      # Read once: a signal arriving later in this iteration (eval, save) is
      # acted on at the next step, so the checkpoint below always precedes the stop.
      stopping = _stop_now(stop, step, config)
      is_last = step == total_steps or stopping
      log_now = step % config.log_every_steps == 0 or is_last
      ckpt_now = step % config.checkpoint_every_steps == 0 or is_last
      # -1: at the end only; 0: never (scored afterwards by experiments.evaluate).
      eval_now = ((eval_every > 0 and step % eval_every == 0) or
                  (eval_every != 0 and step == total_steps))
      if log_now or ckpt_now or eval_now:
        window.extend(s for _, s in _check_finite(pending))
        pending = []
        record = {}
        if log_now:
          # Keys may differ between phases: average each over the steps that have it.
          names = dict.fromkeys(k for s in window for k in s)
          record = {k: float(np.mean([s[k] for s in window if k in s])) for k in names}
          # The steps averaged: fewer than log_every_steps in the first record
          # after a resume from a checkpoint between log steps.
          record['steps_averaged'] = len(window)
          window = []
          rate = progress.steps_per_sec(step)
          if rate is not None:   # None: no step timed since the (re)start.
            record['steps_per_sec'] = rate
          progress.log(step, rate, record)
        if ckpt_now:
          # Before the evaluation (which can take many minutes, e.g. dSprites'
          # metrics): a crash or kill during it then loses no training step.
          save(step)
        if eval_now:
          scores = evaluation.evaluate(state, config, mesh, classifier=classifier)
          # A fixed key: the grid is comparable from one eval to the next.
          writer.write_image(step, 'samples', evaluation.sample_grid(
              state, config, jax.random.PRNGKey(config.seed)))
          record.update({f'eval/{k}': v for k, v in scores.items()})
          logging.info('eval at step %d: %s', step,
                       ' '.join(f'{k}={v:.4g}' for k, v in scores.items()))
        if record:
          # One record per log step; eval scores join the record of their step.
          writer.write_scalars(step, record)
      if eval_now or ckpt_now:
        progress.restart_window(step)  # steps/s measures training only.
      if stopping:
        logging.warning('Received %s: saved a checkpoint at step %d in %s; re-run the same '
                        'command to resume.', _signal_name(stop), step, checkpointer.directory)
        break
  finally:
    try:
      checkpointer.close()   # Waits for the last save: its failure is the error to report.
      writer.write_event('end', step)
    finally:
      writer.close()
  # (Another process's signal may have stopped this one early, too.)
  if not stop.requested and int(state.step) == total_steps:
    logging.info('done at step %d: checkpoints in %s, metrics in %s', int(state.step),
                 checkpointer.directory, writer.path)
  return state


def make_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """The method's combined step (`Method.train_step`) on image batches, jitted for `mesh`."""
  step = functools.partial(methods.for_config(config).train_step, config=config)
  return parallel.jit_step(step, mesh)


def make_phase_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, name: str):
  """The jitted step of the method's phase called `name` (e.g. 'latent_gan')."""
  # The last phase's end is not needed to build its step (nor the data, to count it).
  phases = methods.for_config(config).phases(config, mesh, max(int(config.num_train_steps), 0))
  for phase in phases:
    if phase.name == name:
      return parallel.jit_step(phase.step, mesh, batched=phase.prepare is None)
  raise ValueError(f'{config.model_name} has no phase {name!r} in this config: '
                   f'{[p.name for p in phases]}.')
