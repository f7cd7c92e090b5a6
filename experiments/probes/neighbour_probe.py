r"""How far the neighbour-consistency objective alone gets on a run's frozen latents.

  python -m experiments.probes.neighbour_probe --workdir=W [--epochs=6 --learning_rate=2e-4 \
      --b1=0.5 --num_neighbours=20 --entropy_weight=2 --seed=0]

Encodes the train split with W's latest checkpoint, builds the k-NN graph of
the latents (`lgae.methods.latentgan_ae.latent_cache`), and trains a fresh MLP with D/Q's trunk
widths and a Cat(K) head on `clustering.neighbour_consistency_loss - entropy_weight
* clustering.marginal_entropy` alone: no GAN, no G, no D. Prints the Hungarian
error of its argmax on the train latents after every epoch. A research probe:
it separates what the objective can do on this latent from what the latent
GAN (which shares Q's trunk with D) lets it do. Reads W, writes nothing.

Produced the "Neighbour probe" table of experiments/docs/research_log.md
(first row, the defaults: 41.9 / 21.1 / 14.5 / 14.5 at epochs 1 / 3 / 5 / 6;
run as `python -m experiments.neighbour_probe` then); that row recomputed
on the autoencoder `ae_s0` in
experiments/results/mnist/research/probes_1202/recomputed_1207/ (41.91 /
21.08 / 14.48 / 14.45). The probes of that study's README follow the same
protocol with their own scripts, since removed. Bad input (no checkpoint in W,
a damaged one, a run of another method than latentgan_ae, data not prepared,
fewer train latents than --num_neighbours + 1 or than one batch) ends with
one `error: ...` line and exit code 1.
"""

import math
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from experiments import cli
from experiments.probes import _cli
from lgae.data import input_pipeline
from lgae.evaluation import metrics, run as evaluation
from lgae.methods.latentgan_ae import latent_cache
from lgae.objectives import clustering

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory with a checkpoint.')
_EPOCHS = flags.DEFINE_integer('epochs', 6, 'Passes over the train latents.')
_LR = flags.DEFINE_float('learning_rate', 2e-4, 'Adam learning rate.')
_B1 = flags.DEFINE_float('b1', 0.5, 'Adam b1 (b2 = 0.9).')
_K = flags.DEFINE_integer('num_neighbours', 20, 'Neighbours per latent.')
_ENTROPY = flags.DEFINE_float('entropy_weight', 2.0, 'Weight of the marginal entropy.')
_SEED = flags.DEFINE_integer('seed', 0, 'Initialisation and batch order.')
flags.mark_flag_as_required('workdir')


def run():
  """Trains the probe for --epochs, printing a line per epoch."""
  state, config, mesh = evaluation.load_checkpoint(_WORKDIR.value)
  if config.model_name != 'latentgan_ae':
    raise _cli.InputError(f'{_WORKDIR.value} holds a run of {config.model_name}; the probe trains '
                          'on the latents of a latentgan_ae run.')
  input_pipeline.num_examples(config, config.dataset.train_split)   # Prepared?
  z, labels = latent_cache.encode_split(state, config, mesh, config.dataset.train_split)
  num_classes, batch = int(config.codes.categorical[0]), int(config.batch_size)
  if not 0 < _K.value < z.shape[0] or z.shape[0] < batch:
    raise _cli.InputError(f'{z.shape[0]} train latents: the probe needs more than '
                          f'--num_neighbours={_K.value} and at least one batch ({batch}).')
  z = jnp.asarray(z)
  neighbours = latent_cache.nearest_neighbours(z, k=_K.value)

  class Probe(nn.Module):
    @nn.compact
    def __call__(self, x):
      for width in config.model.discriminator_hidden:
        x = nn.relu(nn.Dense(width)(x))
      return nn.Dense(num_classes)(x)

  probe = Probe()
  key = jax.random.PRNGKey(_SEED.value)
  params = probe.init(key, z[:1])
  tx = optax.adam(_LR.value, b1=_B1.value, b2=0.9)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, key):
    k_index, k_pick = jax.random.split(key)
    index = jax.random.randint(k_index, (batch,), 0, z.shape[0])
    pick = jax.random.randint(k_pick, (batch, 1), 0, _K.value)
    other = jnp.take_along_axis(neighbours[index], pick, axis=1)[:, 0]

    def loss_fn(p):
      logits = probe.apply(p, jnp.concatenate([z[index], z[other]]))
      mine, theirs = (logits[:batch],), (logits[batch:],)
      return (clustering.neighbour_consistency_loss(mine, theirs) -
              _ENTROPY.value * clustering.marginal_entropy(mine))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda p: jnp.argmax(probe.apply(p, z), axis=-1))
  steps_per_epoch, start = z.shape[0] // batch, time.time()
  for epoch in range(_EPOCHS.value):
    for s in range(steps_per_epoch):
      params, opt_state, loss = step(params, opt_state,
                                     jax.random.fold_in(key, epoch * steps_per_epoch + s))
    scores = metrics.clustering_scores(labels, np.asarray(predict(params)))
    print(f'epoch {epoch + 1}: loss {float(loss):.3f} train error (Hungarian) '
          f'{scores["test_error_hungarian"]:.2f} % clusters {scores["num_clusters_used"]:.0f} '
          f'({time.time() - start:.0f} s)', flush=True)


def main(argv):
  cli.begin(argv)
  if _EPOCHS.value < 1:
    cli.fail(f'--epochs={_EPOCHS.value} must be >= 1.')
  if not (math.isfinite(_LR.value) and _LR.value > 0):
    cli.fail(f'--learning_rate={_LR.value} must be a finite number > 0.')
  if not 0 <= _B1.value < 1:
    cli.fail(f'--b1={_B1.value} must be in [0, 1) (Adam\'s first-moment decay).')
  if not (math.isfinite(_ENTROPY.value) and _ENTROPY.value >= 0):
    cli.fail(f'--entropy_weight={_ENTROPY.value} must be a finite number >= 0.')
  run()


if __name__ == '__main__':
  cli.run(main)
