"""The two-stage schedule's cache: Enc(x) of the whole train split, and its k-NN graph.

Computed once when stage 2 starts. On resume the latents are encoded again
(a deterministic function of the frozen autoencoder, seconds), and the costly
part, the teacher's clustering (minutes of UMAP), is read back from the
phase's cache directory, keyed by a hash of those latents and the settings
that shape it; a cache that does not match is recomputed, never trusted.
The latents live on device, replicated; `train_step.latent_gan_step` gathers
its batches from them, so stage 2 never touches an image.
"""

import functools
import hashlib
import json
import os
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from absl import logging

from lgae.core import parallel
from lgae.methods.latentgan_ae import latent_teacher
from lgae.methods.latentgan_ae import state as state_lib


@functools.lru_cache(maxsize=4)
def _jitted_encode(mesh: jax.sharding.Mesh):
  def encode(state, images):
    return state.ae.apply_fn({'params': state.ae.params}, images, method='encode')
  return jax.jit(encode, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.replicated(mesh))


def encode_split(state: state_lib.LatentGANState, config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(Enc(x) [N, latent], labels [N]) over `split`, in stored order."""
  parallel.check_divisible(config.eval_batch_size, mesh, field='eval_batch_size')
  encode = _jitted_encode(mesh)
  # Here, not at the top: the method's modules must not import TensorFlow
  # (a benchmark of its step runs without it: experiments.accelerator_benchmark).
  from lgae.data import input_pipeline  # pylint: disable=g-import-not-at-top
  latents, labels = [], []
  for batch in input_pipeline.eval_iterator(config, split=split, **parallel.process_shard()):
    placed = parallel.shard_batch(batch, mesh)   # This process's rows; whole below.
    out = parallel.to_host({'z': encode(state, placed['image']), 'label': placed['label'],
                            'mask': placed['mask']})
    keep = out['mask'] > 0
    latents.append(out['z'][keep])
    labels.append(out['label'][keep])
  return np.concatenate(latents), np.concatenate(labels)


@functools.partial(jax.jit, static_argnames=('k', 'chunk'))
def nearest_neighbours(points: jax.Array, k: int, chunk: int = 1024) -> jax.Array:
  """[N, k] indices of each point's k nearest other points (Euclidean), nearest first.

  Chunked over query rows so memory stays O(chunk * N); a point is never its
  own neighbour (duplicates of it may be).
  """
  n = points.shape[0]
  if not 0 < k < n:
    raise ValueError(f'k={k} nearest neighbours need 0 < k < number of points ({n}).')
  sq_norms = jnp.sum(jnp.square(points), axis=1)
  pad = (-n) % chunk
  queries = jnp.pad(jnp.arange(n), (0, pad)).reshape(-1, chunk)

  def one_chunk(rows):
    # ||a - b||^2 up to the query's own norm, which does not change the ranking.
    d = sq_norms[None, :] - 2.0 * points[rows] @ points.T
    d = d.at[jnp.arange(chunk), rows].set(jnp.inf)   # not its own neighbour.
    return jax.lax.top_k(-d, k)[1]

  return jax.lax.map(one_chunk, queries).reshape(-1, k)[:n].astype(jnp.int32)


def build(state: state_lib.LatentGANState, cache_dir: str | None = None, *,
          config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """The stage-2 cache, replicated on `mesh`.

  Args:
    state: the state at the start of stage 2 (its autoencoder is frozen).
    cache_dir: where the teacher's labels are kept for resumes (None: nowhere).
    config: the run's config.
    mesh: where to place the cache.

  Returns:
    {'z': [N, latent] float32, 'neighbours': [N, k] int32}; 'neighbours' is
    [N, 1] zeros when `config.loss.neighbour_weight` is 0 (not used then).
    With `config.loss.teacher_weight` > 0 also 'teacher': [N] int32, the
    `lgae.methods.latentgan_ae.latent_teacher` clustering of 'z'.
  """
  z, _ = encode_split(state, config, mesh, config.dataset.train_split)
  if z.shape[0] < config.batch_size:
    raise ValueError(f'The train split has {z.shape[0]} examples, fewer than '
                     f'batch_size={config.batch_size}.')
  if config.loss.neighbour_weight > 0:
    # Computed by every process alike (on its own devices), then placed.
    neighbours = np.asarray(nearest_neighbours(jnp.asarray(z),
                                               int(config.two_stage.num_neighbours)))
  else:
    neighbours = np.zeros((z.shape[0], 1), np.int32)
  cache = {'z': z, 'neighbours': neighbours}
  if config.loss.get('teacher_weight', 0.0) > 0:
    name = f'teacher_{teacher_key(z, config)}.npy'
    path = os.path.join(cache_dir, name) if cache_dir else None
    teacher = _read_teacher(path, len(z), int(config.codes.categorical[0]))
    donor = config.two_stage.get('autoencoder_workdir', '')
    if teacher is None and donor and cache_dir:
      # A run that took its autoencoder from `donor` may find the same teacher
      # there (same latents, settings and seed: the same key), fitted once.
      teacher = _read_teacher(
          os.path.join(donor, 'phase_cache', os.path.basename(os.path.normpath(cache_dir)), name),
          len(z), int(config.codes.categorical[0]))
      if teacher is not None and jax.process_index() == 0:
        _write_atomically(path, teacher)   # This workdir's own copy, for its resumes.
    if teacher is None:
      ts = config.two_stage
      teacher = latent_teacher.umap_gmm_clusters(
          z, int(config.codes.categorical[0]), num_neighbours=int(ts.num_neighbours),
          dims=int(ts.teacher_dims), gmm_inits=int(ts.teacher_gmm_inits), seed=int(config.seed))
      if path and jax.process_index() == 0:
        _write_atomically(path, teacher)
    # Process 0's clustering for everyone: UMAP's floats may differ between hosts.
    cache['teacher'] = parallel.broadcast_from_process_0(teacher)
  return parallel.put_replicated(cache, mesh)


def teacher_key(z: np.ndarray, config: ml_collections.ConfigDict) -> str:
  """A hash of the latents and of every setting the teacher's clustering depends on."""
  ts = config.two_stage
  settings = {'clusters': int(config.codes.categorical[0]), 'neighbours': int(ts.num_neighbours),
              'dims': int(ts.teacher_dims), 'gmm_inits': int(ts.teacher_gmm_inits),
              'seed': int(config.seed), 'method': 'umap_gmm_clusters'}
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
  digest.update(str(z.shape).encode())
  digest.update(np.ascontiguousarray(z, np.float32).tobytes())
  return digest.hexdigest()[:20]


def _read_teacher(path: str | None, num_points: int, num_clusters: int) -> np.ndarray | None:
  """The cached labels at `path` if present and well-formed, else None (recomputed)."""
  if not path or not os.path.isfile(path):
    return None
  try:
    labels = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    logging.warning('Ignoring an unreadable teacher cache %s (%s); recomputing it.', path, e)
    return None
  if (labels.shape != (num_points,) or labels.dtype != np.int32 or
      labels.min(initial=0) < 0 or labels.max(initial=0) >= num_clusters):
    logging.warning('Ignoring a teacher cache %s that does not fit these latents; recomputing it.',
                    path)
    return None
  logging.info('Teacher labels read from %s (not refitted).', path)
  return labels


def _write_atomically(path: str, labels: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.teacher-', suffix='.npy', dir=os.path.dirname(path))
  try:
    with os.fdopen(fd, 'wb') as f:
      np.save(f, np.asarray(labels, np.int32), allow_pickle=False)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
