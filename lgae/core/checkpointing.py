"""Orbax checkpoints of the train state and its config, behind one small class.

Layout: `<workdir>/checkpoints/<step>/{state,config}` (Orbax's default step
naming). Orbax writes each step into a temporary directory and renames it only
when complete, so a checkpoint that was being written when the process died is
never listed, never restored, and is cleaned up by the next writer.
"""

import json
import os
import re
import sys
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from lgae import errors
from lgae.core import config_validation
from lgae.core import method as method_lib

# Fields that only say how long / how often; changing them keeps a run resumable.
SCHEDULE_FIELDS = ('num_epochs', 'num_train_steps', 'log_every_steps', 'checkpoint_every_steps',
                   'eval_every_steps', 'max_checkpoints_to_keep')
# Fields a checkpoint's arrays depend on; resuming with others is an error.
STRUCTURAL_FIELDS = ('model_name', 'model', 'codes', 'dataset.image_size', 'dataset.channels')
# Fields naming the data a run trains on; resuming with others mixes two datasets
# in one run, so it needs `allow_new_data` (fine-tuning: `experiments.main --allow_new_data`).
DATA_FIELDS = ('dataset.name', 'dataset.train_split')
# Where Orbax's own code lives (its abandoned reads after a failed restore).
_ORBAX_DIR = f'{os.sep}orbax{os.sep}'


class CheckpointError(errors.UserError, RuntimeError):
  """A workdir holds no usable checkpoint, or an incompatible one."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


class Checkpointer:
  """Saves and restores `(state, config)` pairs by step.

  Args:
    workdir: the run directory; checkpoints go to `workdir/checkpoints`.
    max_to_keep: how many recent checkpoints to keep (None = all).
    read_only: never create, write or delete anything (evaluation, plots).
  """

  def __init__(self, workdir: str, *, max_to_keep: int | None = 3, read_only: bool = False):
    self.directory = checkpoint_dir(workdir)
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise CheckpointError(f'{self.directory} is a file, not a directory of checkpoints; move it '
                            'away or point --workdir elsewhere.')
    if read_only and not os.path.isdir(self.directory):
      raise CheckpointError(f'No checkpoints in {workdir!r}: {self.directory} does not exist. '
                            'Point --workdir at a directory written by experiments.main.')
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep,
        create=not read_only,
        read_only=read_only,
        cleanup_tmp_directories=not read_only,
    )
    self._manager = ocp.CheckpointManager(epath.Path(self.directory), options=options)
    self._saving = None   # The step of the latest save started.

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict) -> None:
    """Starts an (async) save of `state` and `config` at `step`.

    Raises:
      CheckpointError: this save, or the previous one (which Orbax finishes
        first), could not be written, e.g. on a full disk.
    """
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          config=ocp.args.JsonSave(json.loads(config.to_json()))))
    except Exception as e:  # Orbax and TensorStore raise several types.
      raise self._write_error(e) from e
    self._saving = step

  def wait(self) -> None:
    """Blocks until pending saves are complete on disk; CheckpointError if one failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      raise self._write_error(e) from e

  def _write_error(self, error: Exception) -> CheckpointError:
    """One line for a failed save: which directory, why, and what is kept."""
    if errors.is_out_of_space(error):
      reason = f'no space left on the device: {errors.free_space(self.directory)} free'
      todo = 'Free some space (or move the run to another disk) and re-run the same command'
    else:
      reason = _one_line(error)
      todo = 'Fix the cause and re-run the same command'
    kept = _complete_steps(self.directory)
    kept = (f'the checkpoint at step {max(kept)} is intact' if kept else
            'no checkpoint was complete yet')
    step = f' of step {self._saving}' if self._saving is not None else ''
    return CheckpointError(f'Cannot write the checkpoint{step} into {self.directory} '
                           f'({reason}); {kept}. {todo} to resume.')

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    """The config saved beside the state at `step` (default: latest).

    Fields lgae gained after the checkpoint was written are filled with their
    defaults (`config_validation.fill_new_fields`); fields it no longer has
    are dropped (`config_validation.drop_removed_fields`: today's code cannot
    read them, so dropping them changes nothing).
    """
    step = self._require_step(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises several types for damaged files.
      raise CheckpointError(f'Cannot read the config of checkpoint {step} in {self.directory} '
                            f'({_one_line(e)}).{self._if_damaged(step)}') from e
    config = ml_collections.ConfigDict(restored['config'])
    filled = config_validation.fill_new_fields(config)
    if filled:
      logging.info('Checkpoint %d in %s predates config fields %s: they take their defaults '
                   '(the behaviour before they existed).', step, self.directory, filled)
    dropped = config_validation.drop_removed_fields(config)
    if dropped:
      logging.info('Checkpoint %d in %s has config fields this lgae no longer has, dropped: %s.',
                   step, self.directory, dropped)
    return config

  def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
    """Restores the state at `step` (default: latest) onto `abstract_state`'s shardings.

    `abstract_state` (from `jax.eval_shape`, with shardings attached) fixes
    shapes, dtypes and placement, so a checkpoint written on 8 devices restores
    onto 1 and vice versa.
    """
    step = self._require_step(step)
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:
      raise CheckpointError(
          f'Checkpoint {step} in {self.directory} does not match this model or is damaged '
          f'({_one_line(e)}). Use the config it was written with, or a fresh --workdir.'
          f'{self._if_damaged(step)}') from e
    return restored['state']

  def close(self) -> None:
    """Waits for pending saves, then releases Orbax's threads (also after a failed save)."""
    try:
      self.wait()
    finally:
      try:
        self._manager.close()
      except Exception as e:  # pylint: disable=broad-except
        # Only a save's failure, already raised by wait() above.
        logging.debug('Orbax CheckpointManager.close() after a failed save: %s', _one_line(e))

  def _if_damaged(self, step: int) -> str:
    """How to fall back from a damaged `step` to the one before it, if any."""
    # Advice only, never done here: the step may hold the only copy of a long
    # run, and be unreadable for a reason that passes (e.g. a flaky disk).
    earlier = [s for s in self.all_steps() if s < step]
    if not earlier:
      return ''
    return (f' If it is damaged, delete {os.path.join(self.directory, str(step))} to resume '
            f'from step {max(earlier)}.')

  def _require_step(self, step: int | None) -> int:
    if step is None:
      step = self.latest_step()
      if step is None:
        raise CheckpointError(f'No complete checkpoint in {self.directory}.')
    elif step not in self.all_steps():
      raise CheckpointError(f'No checkpoint for step {step} in {self.directory}; '
                            f'have {self.all_steps()}.')
    return step


def _complete_steps(directory: str) -> list[int]:
  """The steps with a finished checkpoint on disk (Orbax renames a step's directory when done)."""
  try:
    return [int(name) for name in os.listdir(directory) if name.isdigit()]
  except OSError:
    return []


def _one_line(error: Exception, limit: int = 200) -> str:
  # TensorStore errors span dozens of lines (a JSON spec, object reprs); the CLI prints one.
  text = re.sub(r'<[^<>]*>', '<...>', ' '.join(str(error).split()))
  if len(text) > limit:
    text = text[:limit].rsplit(' ', 1)[0] + ' ...'
  return f'{type(error).__name__}: {text}'


def check_resumable(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                    fields: tuple[str, ...] = STRUCTURAL_FIELDS,
                    holder: str = 'The workdir', *, allow_new_data: bool = False) -> None:
  """Raises CheckpointError if the saved run used another model or data layout.

  `fields` are the dotted config fields that must match; `holder` names the
  saved run in the message. The method's `compute_only_fields` may differ.
  With the default `fields`, the data (`DATA_FIELDS`) must match too unless
  `allow_new_data`.
  """
  saved, config = _without_compute_only(saved), _without_compute_only(config)

  def get(cfg, dotted):
    for part in dotted.split('.'):
      cfg = cfg[part]
    return json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg))

  for field in fields:
    old, new = get(saved, field), get(config, field)
    if old != new:
      raise CheckpointError(
          f'{holder} holds a run with config.{field}={old}, but this config has {new}. '
          'Use a fresh --workdir (or the config that run was started with).')
  if fields != STRUCTURAL_FIELDS:
    return
  for field in DATA_FIELDS:
    old, new = get(saved, field), get(config, field)
    if old == new:
      continue
    if not allow_new_data:
      raise CheckpointError(
          f'{holder} holds a run trained on config.{field}={old!r}, but this config has '
          f'{new!r}: resuming would train one model on two datasets. Use a fresh --workdir, or '
          'pass --allow_new_data to continue training this model on the new data (fine-tuning).')
    logging.warning('Resuming a run trained on config.%s=%r with %r (--allow_new_data).',
                    field, old, new)
  changed = [k for k in saved
             if k not in SCHEDULE_FIELDS and k in config and
             json.dumps(get(saved, k), sort_keys=True) != json.dumps(get(config, k), sort_keys=True)]
  if changed:
    logging.warning('Resuming with changed config fields %s (not structural; continuing).',
                    changed)


def _without_compute_only(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` without its method's `compute_only_fields` (older saved configs may lack them)."""
  try:
    compute_only = method_lib.for_config(config).compute_only_fields
  except (ValueError, AttributeError):
    compute_only = ()
  config = ml_collections.ConfigDict(config.to_dict())
  for dotted in compute_only:
    *parents, leaf = dotted.split('.')
    node = config
    for part in parents:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if isinstance(node, ml_collections.ConfigDict) and leaf in node:
      del node[leaf]
  return config


def silence_closed_event_loop_callbacks() -> None:
  """Drops the reports of Orbax's abandoned reads that follow a failed restore.

  When a restore fails (a damaged checkpoint), Orbax closes its event loop
  while other TensorStore reads are still in flight; as they complete (or
  are collected at exit), their callbacks and coroutines report
  `RuntimeError('Event loop is closed')` or the same read error again through
  `sys.unraisablehook`, burying the one-line error under hundreds of lines.
  The restore's own error has already been raised (and reported). Process-wide,
  so only for command-line entry points; every other unraisable error still
  reaches the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, '_drops_closed_event_loop', False):
    return

  def hook(unraisable):
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and str(error) == 'Event loop is closed':
      return
    if _raised_in_orbax(unraisable):
      return
    previous(unraisable)

  hook._drops_closed_event_loop = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


def _raised_in_orbax(unraisable) -> bool:
  """Whether an unraisable error comes from Orbax's code (a coroutine of it, or a frame)."""
  code = getattr(unraisable.object, 'cr_code', None)
  if code is not None and _ORBAX_DIR in code.co_filename:
    return True
  frame = unraisable.exc_traceback
  while frame is not None:
    if _ORBAX_DIR in frame.tb_frame.f_code.co_filename:
      return True
    frame = frame.tb_next
  return False
