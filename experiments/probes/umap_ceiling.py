import sys, time
import numpy as np
import umap
from sklearn.mixture import GaussianMixture
from sklearn.metrics import confusion_matrix
from lgae.evaluation import metrics
d = np.load(sys.argv[1]); z, y = d['ztr'][:20000], d['ytr'][:20000]
t = time.time()
e = umap.UMAP(n_components=10, n_neighbors=20, min_dist=0.0, random_state=0).fit_transform(z)
pred = GaussianMixture(10, covariance_type='full', random_state=0).fit_predict(e)
print(sys.argv[1], 'UMAP+GMM', metrics.clustering_scores(y, pred)['test_error_hungarian'], f'{time.time()-t:.0f}s')
np.set_printoptions(linewidth=200); print(confusion_matrix(y, pred))
