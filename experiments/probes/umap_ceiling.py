r"""How well UMAP + a Gaussian mixture cluster a latent: the label-free ceiling of H5.

  python -m experiments.probes.umap_ceiling --latents=lat.npz

Reads `ztr` / `ytr` of an .npz written by `experiments.probes.dump_latents`
and, on the first 20,000 train latents, embeds them with UMAP (10-d, 20
neighbours, min_dist 0, seed 0) and fits a full-covariance 10-component GMM
(seed 0) to the embedding. Prints the path, the GMM's Hungarian error in % of
the labels (`lgae.evaluation.metrics.clustering_scores`) and the time, then
the confusion matrix (rows: labels, columns: mixture components).

Produced the 3.48 % of the 5-epoch autoencoder's latent (`ae_s0`, 76 s) in
experiments/results/mnist/research/probes_1202/ (README.md, NOTES.md; run
there as `scripts/umap_ceiling.py lat_s0.npz`), the clustering that became
the teacher of E4; recomputed there in recomputed_1207/ (3.48 % again).
Writes nothing. Bad input (no such file, not an .npz, no `ztr`/`ytr`, under
21 latents) ends with one `error: ...` line and exit code 1.
"""

import time

import numpy as np
from absl import flags

from experiments import cli
from experiments.probes import _cli
from lgae.evaluation import metrics

_LATENTS = flags.DEFINE_string('latents', None, '.npz written by experiments.probes.dump_latents.')
flags.mark_flags_as_required(['latents'])

NUM_POINTS = 20000   # The first 20k train latents, as recorded.
MIN_POINTS = 21      # UMAP's 20 neighbours plus the point itself.


def run(path: str) -> float:
  """Prints the probe's two lines; returns the Hungarian error in %."""
  z, y = _cli.load_latents(path, MIN_POINTS)
  # Imported once the input is known good: umap loads numba (and tries
  # TensorFlow), seconds that a bad path should not wait for.
  import umap  # pylint: disable=g-import-not-at-top
  from sklearn.metrics import confusion_matrix  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture  # pylint: disable=g-import-not-at-top

  z, y = z[:NUM_POINTS], y[:NUM_POINTS]
  t = time.time()
  e = umap.UMAP(n_components=10, n_neighbors=20, min_dist=0.0, random_state=0).fit_transform(z)
  pred = GaussianMixture(10, covariance_type='full', random_state=0).fit_predict(e)
  error = metrics.clustering_scores(y, pred)['test_error_hungarian']
  print(path, 'UMAP+GMM', error, f'{time.time()-t:.0f}s')
  np.set_printoptions(linewidth=200)
  print(confusion_matrix(y, pred))
  return error


def main(argv):
  _cli.run_main(argv, run, _LATENTS.value)


if __name__ == '__main__':
  cli.run(main)
