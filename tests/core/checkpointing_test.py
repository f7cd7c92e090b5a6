"""Checkpoints: save -> restore is exact, across device counts, with the config beside it."""

import os

import jax
import numpy as np
import pytest

from configs import chairs, mnist
from lgae.core import checkpointing, parallel
from lgae.methods.latentgan_ae import step as train_step
from lgae.core import state as state_lib
from lgae import train


def _trained_state(config, mesh, steps=2):
  state = state_lib.create_state(config, mesh)
  step_fn = train.make_train_step(config, mesh)
  images = np.random.default_rng(0).uniform(-1, 1, (config.batch_size, 32, 32, 1))
  for _ in range(steps):
    state, _ = step_fn(state, parallel.shard_batch({'image': images.astype(np.float32)}, mesh))
  return state


def _save_and_reopen(tmp_path, state, config):
  """Saves (state, config) as step 0 under tmp_path; returns a read-only Checkpointer on it."""
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(0, state, config)
  ckpt.close()
  return checkpointing.Checkpointer(str(tmp_path), read_only=True)


def _assert_trees_equal(a, b):
  a, b = jax.device_get(a), jax.device_get(b)
  # Compare by key path: the states' static apply_fns differ (fresh modules).
  pa = jax.tree_util.tree_leaves_with_path(a)
  pb = jax.tree_util.tree_leaves_with_path(b)
  assert [jax.tree_util.keystr(k) for k, _ in pa] == [jax.tree_util.keystr(k) for k, _ in pb]
  for (k, x), (_, y) in zip(pa, pb):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(k))


def test_save_restore_is_identical(tmp_path):
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  state = _trained_state(config, mesh)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(2, state, config)
  ckpt.wait()
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')
  restored = ckpt.restore_state(state_lib.abstract_state(config, mesh))
  ckpt.close()
  _assert_trees_equal(state, restored)
  assert int(restored.step) == 2


def test_restore_onto_another_device_count(tmp_path):
  config = mnist.get_config('smoke')
  state = _trained_state(config, parallel.make_mesh(jax.devices()[:4]))
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(2, state, config)
  ckpt.close()
  mesh1 = parallel.make_mesh(jax.devices()[:1])
  reader = checkpointing.Checkpointer(str(tmp_path), read_only=True)
  restored = reader.restore_state(state_lib.abstract_state(config, mesh1))
  _assert_trees_equal(state, restored)
  assert jax.tree.leaves(restored)[0].sharding.device_set == {jax.devices()[0]}


def test_config_round_trips(tmp_path):
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(0, state_lib.create_state(config, mesh), config)
  ckpt.close()
  saved = checkpointing.Checkpointer(str(tmp_path), read_only=True).restore_config()
  assert saved.to_json(sort_keys=True) == config.to_json(sort_keys=True)


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
  config = mnist.get_config('smoke')
  mesh = parallel.make_mesh()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(0, state_lib.create_state(config, mesh), config)
  ckpt.close()
  other = chairs.get_config('smoke')
  reader = checkpointing.Checkpointer(str(tmp_path), read_only=True)
  with pytest.raises(checkpointing.CheckpointError, match='does not match this model'):
    reader.restore_state(state_lib.abstract_state(other, mesh))
  with pytest.raises(checkpointing.CheckpointError, match='config.model'):
    checkpointing.check_resumable(reader.restore_config(), other)


def test_read_only_on_missing_workdir(tmp_path):
  with pytest.raises(checkpointing.CheckpointError, match='No checkpoints'):
    checkpointing.Checkpointer(str(tmp_path / 'nope'), read_only=True)
  assert not (tmp_path / 'nope').exists()


def test_decoder_upsample_conv_may_change_on_resume(tmp_path):
  """A run checkpointed with one decoder_upsample_conv resumes with another (same arrays)."""
  config = mnist.get_config('smoke')
  config.model.decoder_upsample_conv = 'project_first'   # e.g. saved by a CPU run.
  mesh = parallel.make_mesh()
  reader = _save_and_reopen(tmp_path, state_lib.create_state(config, mesh), config)
  saved = reader.restore_config()
  for value in ('auto', 'upsample_first'):
    other = mnist.get_config('smoke')
    other.model.decoder_upsample_conv = value
    checkpointing.check_resumable(saved, other)   # no error.
    reader.restore_state(state_lib.abstract_state(other, mesh))
  # A config saved before the field existed resumes too.
  del saved.model['decoder_upsample_conv']
  checkpointing.check_resumable(saved, mnist.get_config('smoke'))
  # Every other model field still refuses.
  other = mnist.get_config('smoke')
  other.model.latent_dim = 32
  with pytest.raises(checkpointing.CheckpointError, match='config.model'):
    checkpointing.check_resumable(saved, other)


def test_a_checkpoint_older_than_a_config_field_still_loads_and_resumes(tmp_path):
  """A config saved before a field existed gets the field's default on restore
  (the behaviour before it existed), so evaluation loads it and a resume with
  today's config passes the structural check."""
  config = mnist.get_config('smoke')
  old = config.copy_and_resolve_references()
  with old.unlocked():
    del old.model['decoder_upsample']      # as if saved by an lgae without the field
    del old['max_checkpoints_to_keep']
  reader = _save_and_reopen(tmp_path, state_lib.create_state(config, parallel.make_mesh()), old)
  saved = reader.restore_config()
  reader.close()
  assert saved.model.decoder_upsample == config.model.decoder_upsample
  assert saved.max_checkpoints_to_keep == config.max_checkpoints_to_keep
  assert saved.to_json(sort_keys=True) == config.to_json(sort_keys=True)
  checkpointing.check_resumable(saved, config)


def test_another_dataset_is_refused_unless_new_data_is_allowed():
  saved = mnist.get_config('smoke')
  other = mnist.get_config('smoke')
  other.dataset.name = 'fashion_mnist'   # Same shapes: only the data differ.
  with pytest.raises(checkpointing.CheckpointError, match="dataset.name='mnist'.*allow_new_data"):
    checkpointing.check_resumable(saved, other)
  checkpointing.check_resumable(saved, other, allow_new_data=True)   # no error.


class _FailingManager:
  """An Orbax CheckpointManager whose background save failed as TensorStore reports a full disk."""

  def __init__(self):
    self.closed = False

  def save(self, step, args):
    del step, args

  def wait_until_finished(self):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "x/6.orbax-checkpoint-tmp/'
                     "_sharding\": Failed to write 30880 bytes: No space left on device "
                     "[os_error_code='28']")

  def close(self):
    self.closed = True
    self.wait_until_finished()


def test_a_save_that_fails_on_a_full_disk_is_one_checkpoint_error(tmp_path):
  config = mnist.get_config('smoke')
  state = state_lib.create_state(config, parallel.make_mesh())
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(3, state, config)
  ckpt.wait()
  failing = ckpt._manager = _FailingManager()  # pylint: disable=protected-access
  ckpt.save(6, state, config)
  with pytest.raises(checkpointing.CheckpointError) as error:
    ckpt.close()
  message = str(error.value)
  assert 'of step 6' in message and 'no space left on the device' in message, message
  assert 'the checkpoint at step 3 is intact' in message, message
  assert '\n' not in message
  assert failing.closed   # Orbax's threads are released even though the save failed.


def test_checkpoints_that_is_a_file_is_a_checkpoint_error(tmp_path):
  (tmp_path / 'checkpoints').write_text('not a directory')
  for read_only in (True, False):
    with pytest.raises(checkpointing.CheckpointError, match='is a file'):
      checkpointing.Checkpointer(str(tmp_path), read_only=read_only)
  assert (tmp_path / 'checkpoints').read_text() == 'not a directory'


def test_the_reports_of_orbaxs_abandoned_reads_are_dropped_and_others_kept(monkeypatch):
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  reported = []
  monkeypatch.setattr(sys, 'unraisablehook', reported.append)
  checkpointing.silence_closed_event_loop_callbacks()

  def unraisable_from(filename):
    # An error raised by code that lives in `filename`, as a coroutine of it reports at exit.
    try:
      exec(compile('raise Exception("Encountered error while reading array index")', filename,
                   'exec'), {})
    except Exception as e:  # pylint: disable=broad-except
      return types.SimpleNamespace(exc_type=type(e), exc_value=e, exc_traceback=e.__traceback__,
                                   err_msg=None, object=None)

  orbax_file = os.path.join(os.sep, 'site-packages', 'orbax', 'checkpoint', 'serialization.py')
  sys.unraisablehook(unraisable_from(orbax_file))
  assert not reported
  mine = unraisable_from(os.path.join(os.sep, 'work', 'my_code.py'))
  sys.unraisablehook(mine)
  assert reported == [mine]
