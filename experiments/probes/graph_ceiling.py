r"""How well graph methods cluster a latent: the spectral ceiling of H5.

  python -m experiments.probes.graph_ceiling --latents=lat.npz

Reads `ztr` / `ytr` of an .npz written by `experiments.probes.dump_latents`
and, on the first 20,000 train latents:
  1. the 10-NN and 20-NN label agreement under three metrics (Euclidean, on
     standardised dimensions, cosine): one line each;
  2. spectral clustering (10 eigenvectors of the graph, then k-means with
     K = 10, seed 0) of three 20-NN graphs: plain symmetric connectivity
     ('knn'), UMAP's fuzzy edge weights ('umap_fuzzy'), mutual neighbours
     only ('mutual'): one line each with the Hungarian error in % of the
     labels (`lgae.evaluation.metrics.clustering_scores`) and the time.

Produced the spectral ceilings of the 5-epoch autoencoder's latent (`ae_s0`)
in experiments/results/mnist/research/probes_1202/ (README.md, NOTES.md; run
there as `scripts/graph_ceiling.py lat_s0.npz`): 35.9 % (knn), 35.9 %
(umap_fuzzy), 55.3 % (mutual); recomputed there in recomputed_1207/
(35.94 / 35.87 / 55.33 %). Writes nothing. Bad input (no such file, not
an .npz, no `ztr`/`ytr`, under 21 latents) ends with one `error: ...` line
and exit code 1.
"""

import time

import numpy as np
import scipy.sparse as sp
from absl import flags
from sklearn.cluster import KMeans
from sklearn.manifold import spectral_embedding
from sklearn.neighbors import NearestNeighbors

from experiments import cli
from experiments.probes import _cli
from lgae.evaluation import metrics

_LATENTS = flags.DEFINE_string('latents', None, '.npz written by experiments.probes.dump_latents.')
flags.mark_flags_as_required(['latents'])

NUM_POINTS = 20000   # The first 20k train latents, as recorded.
K = 20               # Neighbours per latent.
MIN_POINTS = K + 1


def knn(x, k, metric='euclidean'):
  """(distances, indices) [N, k] of each row's k nearest other rows."""
  nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(x)
  dist, idx = nn.kneighbors(x)
  return dist[:, 1:], idx[:, 1:]


def run(path: str) -> dict[str, float]:
  """Prints the probe's six lines; returns {graph name: Hungarian error in %}."""
  z, y = _cli.load_latents(path, MIN_POINTS)
  z, y = z[:NUM_POINTS], y[:NUM_POINTS]
  for name, x, metric in [('euclid', z, 'euclidean'), ('std', (z - z.mean(0)) / z.std(0), 'euclidean'),
                          ('cosine', z, 'cosine')]:
    dist, idx = knn(x, K, metric)
    agree10 = np.mean(y[idx[:, :10]] == y[:, None])
    agree20 = np.mean(y[idx] == y[:, None])
    print(f'{name}: 10-NN agree {agree10:.4f} 20-NN {agree20:.4f}', flush=True)

  def err(pred):
    return metrics.clustering_scores(y, pred)['test_error_hungarian']

  dist, idx = knn(z, K)
  n = z.shape[0]
  rows = np.repeat(np.arange(n), K)
  # Plain kNN connectivity.
  A = sp.csr_matrix((np.ones(n * K), (rows, idx.ravel())), shape=(n, n))
  A = ((A + A.T) > 0).astype(float)
  # UMAP-style fuzzy weights: per point, sigma by bisection so that the
  # weights sum to log2(K).
  rho = dist[:, 0]
  sig = np.zeros(n)
  target = np.log2(K)
  for i in range(n):
    lo, hi = 1e-6, 1e3
    for _ in range(60):
      mid = (lo + hi) / 2
      s = np.sum(np.exp(-np.maximum(dist[i] - rho[i], 0) / mid))
      if s > target:
        hi = mid
      else:
        lo = mid
    sig[i] = (lo + hi) / 2
  W = sp.csr_matrix((np.exp(-np.maximum(dist - rho[:, None], 0) / sig[:, None]).ravel(),
                     (rows, idx.ravel())), shape=(n, n))
  U = W + W.T - W.multiply(W.T)
  # Mutual kNN.
  M = sp.csr_matrix((np.ones(n * K), (rows, idx.ravel())), shape=(n, n))
  M = M.multiply(M.T)
  errors = {}
  for name, G in [('knn', A), ('umap_fuzzy', U), ('mutual', M)]:
    t = time.time()
    emb = spectral_embedding(G, n_components=10, random_state=0, drop_first=False)
    pred = KMeans(10, n_init=10, random_state=0).fit_predict(emb)
    errors[name] = err(pred)
    print(f'spectral({name}) Hungarian {errors[name]:.2f} % ({time.time() - t:.0f}s)', flush=True)
  return errors


def main(argv):
  _cli.run_main(argv, run, _LATENTS.value)


if __name__ == '__main__':
  cli.run(main)
