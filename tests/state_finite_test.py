"""No checkpoint of a non-finite state, even when every logged loss is finite."""

import jax
import jax.numpy as jnp
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing, parallel
from tests import fake_mnist


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def test_nan_only_in_batch_norm_statistics_is_never_checkpointed(tmp_path, data_dir, monkeypatch):
  config = mnist.get_config('smoke')   # 6 steps, checkpoints at 3 and 6.
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.eval_every_steps = -1
  real_jit = parallel.jit_step

  def make_poisoned(step, mesh, **kwargs):
    step_fn = real_jit(step, mesh, **kwargs)

    def poisoned(state, batch):
      state, metrics = step_fn(state, batch)
      # From step 5 on a BatchNorm running mean is NaN; the losses stay finite
      # (training uses batch statistics), so only the state check can see it.
      stats = jax.tree.map(
          lambda x: jnp.where(state.step >= 5, x.at[..., 0].set(jnp.nan), x), state.ae.batch_stats)
      return state.replace(ae=state.ae.replace(batch_stats=stats)), metrics
    return poisoned

  monkeypatch.setattr(parallel, 'jit_step', make_poisoned)   # the loop jits each phase's step.
  workdir = str(tmp_path / 'run')
  with pytest.raises(train.NonFiniteLossError, match='state became non-finite'):
    train.train_and_evaluate(config, workdir)
  # The checkpoint at step 3 (good) exists; step 6 (poisoned) was never written.
  assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [3]
