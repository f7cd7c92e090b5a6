"""Test-split evaluation of a train state: clustering by Q, reconstruction.

The jitted part maps a fixed-size (padded) eval batch to per-example outputs;
everything else is numpy, scored by the pure cores in `lgae.metrics`.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgae import input_pipeline
from lgae import metrics
from lgae import parallel
from lgae import state as state_lib


def eval_outputs(state: state_lib.LatentGANState, images: jax.Array) -> dict[str, jax.Array]:
  """Per-example outputs: Q's Cat(K) prediction on Enc(x) and reconstruction error.

  The autoencoder runs in inference mode (BatchNorm running averages).
  """
  z, recon = state.ae.apply_fn({'params': state.ae.params, 'batch_stats': state.ae.batch_stats},
                               images, train=False)
  out = state.disc.apply_fn({'params': state.disc.params}, z)
  cat_logits = out['cat_logits']
  clusters = (jnp.stack([jnp.argmax(l, axis=-1) for l in cat_logits], axis=1)
              if cat_logits else jnp.zeros((images.shape[0], 0), jnp.int32))
  sq_err = jnp.mean(jnp.square(images - recon), axis=(1, 2, 3))
  return {'clusters': clusters.astype(jnp.int32), 'sq_err': sq_err, 'z': z}


@functools.lru_cache(maxsize=8)
def _jitted_eval_outputs(mesh: jax.sharding.Mesh):
  rep = parallel.replicated(mesh)
  return jax.jit(eval_outputs, in_shardings=(rep, parallel.batch_sharded(mesh)),
                 out_shardings=rep)


def collect(state: state_lib.LatentGANState, config: ml_collections.ConfigDict,
            mesh: jax.sharding.Mesh, *, split: str | None = None) -> dict[str, np.ndarray]:
  """Runs `eval_outputs` over a whole split; returns unpadded numpy arrays.

  Returns:
    {'labels': [N], 'clusters': [N, num_cat_codes], 'sq_err': [N], 'z': [N, latent]}
  """
  parallel.check_divisible(config.eval_batch_size, mesh, field='eval_batch_size')
  fn = _jitted_eval_outputs(mesh)
  parts = {'labels': [], 'clusters': [], 'sq_err': [], 'z': []}
  for batch in input_pipeline.eval_iterator(config, split=split):
    out = jax.device_get(fn(state, parallel.shard_batch({'image': batch['image']}, mesh)['image']))
    keep = batch['mask'] > 0
    parts['labels'].append(batch['label'][keep])
    for k in ('clusters', 'sq_err', 'z'):
      parts[k].append(out[k][keep])
  return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate(state: state_lib.LatentGANState, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, *, split: str | None = None) -> dict[str, float]:
  """Unsupervised-classification and reconstruction scores on the eval split.

  Clustering uses Q's first categorical head (MNIST: the Cat(10) code), the
  paper's Table 1 protocol.
  """
  outputs = collect(state, config, mesh, split=split)
  scores = {'recon_mse': float(np.mean(outputs['sq_err']))}
  if outputs['clusters'].shape[1]:
    num_clusters = int(config.codes.categorical[0])
    scores.update(metrics.clustering_scores(outputs['labels'], outputs['clusters'][:, 0],
                                            num_clusters=num_clusters))
  return scores
