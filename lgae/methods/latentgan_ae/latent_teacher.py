"""A neighbourhood-aware clustering of the frozen latents, as targets for Q (two-stage only).

Why: on a trained autoencoder's latent, UMAP (McInnes et al. 2018) to a few
dimensions followed by a Gaussian mixture clusters MNIST digits at ~3 % error
(the N2D recipe, McConville et al. 2020), while Q's categorical head trained by
the latent GAN with neighbour consistency stalls at ~12 %: every remaining
error of that objective is a pair of digits (4 and 9) that it splits along a
shared style direction instead of along identity, a local optimum of a
balanced graph cut (experiments/docs/reproducing.md). `umap_gmm_clusters` computes
that clustering once, when the two-stage cache is built, and
`config.loss.teacher_weight` adds the cross-entropy of Q's first Cat head on
real latents against it to D/Q's loss. The classifier stays Q(Enc(x)); the
clustering it learns comes from the teacher, which reads no label.

umap-learn is a dependency of lgae (setup.cfg).
"""

import warnings
from collections.abc import Callable

import numpy as np
from absl import logging

from lgae import errors


class TeacherUnavailableError(errors.UserError, ImportError):
  """umap-learn is not installed; the message says how to get it."""


def _umap():
  try:
    import umap  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise TeacherUnavailableError(
        'config.loss.teacher_weight > 0 needs umap-learn, a dependency of lgae that is '
        'missing here: pip install umap-learn (or reinstall lgae), or set '
        '--config.loss.teacher_weight=0.') from e
  return umap


def check_available() -> None:
  """Raises TeacherUnavailableError now rather than after stage 1."""
  _umap()


def umap_gmm_clusters(z: np.ndarray, num_clusters: int, *, num_neighbours: int = 20,
                      dims: int = 10, gmm_inits: int = 5, seed: int = 0) -> np.ndarray:
  """Cluster indices [N] of latents [N, D]: UMAP to `dims`, then a full-covariance GMM.

  UMAP uses `num_neighbours` neighbours and min_dist 0 (tight clusters, as for
  clustering in the N2D recipe); the Gaussian mixture keeps the best of
  `gmm_inits` initialisations by its own likelihood bound (label-free: a
  single initialisation sometimes merges two digits). Deterministic for a
  given `seed` (UMAP then runs single-threaded: ~4 CPU minutes for 60k latents).
  """
  return fit(z, num_clusters, num_neighbours=num_neighbours, dims=dims, gmm_inits=gmm_inits,
             seed=seed)[0]


def fit(z: np.ndarray, num_clusters: int, *, num_neighbours: int = 20, dims: int = 10,
        gmm_inits: int = 5, seed: int = 0) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
  """`umap_gmm_clusters`'s labels of `z`, and `assign(z_new) -> [M]` for other latents.

  `assign` places new latents with the fitted UMAP's `transform` and the
  mixture's `predict`: the teacher's own clustering of, e.g., the test split.
  """
  z = np.asarray(z, np.float32)
  if z.ndim != 2 or len(z) <= max(num_neighbours, num_clusters):
    raise ValueError(f'need [N, D] latents with N > {max(num_neighbours, num_clusters)}, '
                     f'got shape {z.shape}.')
  from sklearn import mixture  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    # "n_jobs value 1 overridden to 1 by setting random_state": the determinism we ask for.
    warnings.filterwarnings('ignore', message='n_jobs value', category=UserWarning)
    reducer = _umap().UMAP(n_components=dims, n_neighbors=num_neighbours, min_dist=0.0,
                           random_state=seed)
    embedding = reducer.fit_transform(z)
  gmm = mixture.GaussianMixture(num_clusters, covariance_type='full', n_init=gmm_inits,
                                random_state=seed).fit(embedding)
  clusters = gmm.predict(embedding).astype(np.int32)
  logging.info('Teacher clustering (UMAP to %d dims + GMM, best of %d): cluster sizes %s.',
               dims, gmm_inits, np.bincount(clusters, minlength=num_clusters).tolist())

  def assign(z_new: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
      warnings.filterwarnings('ignore', message='n_jobs value', category=UserWarning)
      return gmm.predict(reducer.transform(np.asarray(z_new, np.float32))).astype(np.int32)

  return clusters, assign
