"""Offline: how well do graph methods cluster a latent? (research scratch)"""
import sys, time
import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors
from sklearn.cluster import SpectralClustering, KMeans
from sklearn.manifold import spectral_embedding
from lgae.evaluation import metrics

d = np.load(sys.argv[1])
z, y = d['ztr'][:20000], d['ytr'][:20000]
def knn(x, k, metric='euclidean'):
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(x)
    dist, idx = nn.kneighbors(x)
    return dist[:, 1:], idx[:, 1:]
for name, x, metric in [('euclid', z, 'euclidean'), ('std', (z - z.mean(0)) / z.std(0), 'euclidean'),
                        ('cosine', z, 'cosine')]:
    dist, idx = knn(x, 20, metric)
    agree10 = np.mean(y[idx[:, :10]] == y[:, None]); agree20 = np.mean(y[idx] == y[:, None])
    print(f'{name}: 10-NN agree {agree10:.4f} 20-NN {agree20:.4f}', flush=True)

def err(pred):
    s = metrics.clustering_scores(y, pred); return s['test_error_hungarian']

dist, idx = knn(z, 20)
n = z.shape[0]
rows = np.repeat(np.arange(n), 20)
# plain kNN connectivity
A = sp.csr_matrix((np.ones(n * 20), (rows, idx.ravel())), shape=(n, n)); A = ((A + A.T) > 0).astype(float)
# UMAP-style fuzzy weights
rho = dist[:, 0]
sig = np.zeros(n)
target = np.log2(20)
for i in range(n):
    lo, hi = 1e-6, 1e3
    for _ in range(60):
        mid = (lo + hi) / 2
        s = np.sum(np.exp(-np.maximum(dist[i] - rho[i], 0) / mid))
        if s > target: hi = mid
        else: lo = mid
    sig[i] = (lo + hi) / 2
W = sp.csr_matrix((np.exp(-np.maximum(dist - rho[:, None], 0) / sig[:, None]).ravel(), (rows, idx.ravel())), shape=(n, n))
U = W + W.T - W.multiply(W.T)
# mutual kNN
M = sp.csr_matrix((np.ones(n * 20), (rows, idx.ravel())), shape=(n, n)); M = M.multiply(M.T)
for name, G in [('knn', A), ('umap_fuzzy', U), ('mutual', M)]:
    t = time.time()
    emb = spectral_embedding(G, n_components=10, random_state=0, drop_first=False)
    pred = KMeans(10, n_init=10, random_state=0).fit_predict(emb)
    print(f'spectral({name}) Hungarian {err(pred):.2f} % ({time.time() - t:.0f}s)', flush=True)
