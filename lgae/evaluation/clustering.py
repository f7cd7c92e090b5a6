"""Score family: unsupervised classification, the paper's Table 1 protocol.

The cluster of an eval image is the argmax of the method's first categorical
head (for the LatentGAN-AE, Q's first Cat head on Enc(x)), scored against the
class labels by `metrics.clustering_scores`. Only for datasets with class
labels (a tfds ClassLabel `label` feature, `outputs.has_class_labels`):
CelebA and 3D Chairs carry a constant label 0 in our pipeline, where these
scores would be meaningless.

`cluster_to_label` is the same matching as a map, which the generation family
uses to say which class a generated category should show.
"""

import numpy as np

from lgae.evaluation import metrics
from lgae.evaluation import outputs as outputs_lib

KEYS = ('test_error_hungarian', 'test_error_majority', 'nmi', 'ari', 'num_clusters_used')


def _first_head_clusters(context: outputs_lib.Context) -> np.ndarray | None:
  """[N] clusters of the first categorical head on a labelled dataset, else None."""
  clusters = context.outputs['clusters']
  if context.labelled and clusters.shape[1]:
    return clusters[:, 0]
  return None


def scores(context: outputs_lib.Context) -> dict[str, float]:
  """Errors in percent, NMI, ARI and the number of clusters used (`KEYS`)."""
  clusters = _first_head_clusters(context)
  if clusters is None:
    return {}
  num_clusters = int(context.config.codes.categorical[0])
  return metrics.clustering_scores(context.outputs['labels'], clusters,
                                   num_clusters=num_clusters)


def cluster_to_label(context: outputs_lib.Context) -> dict[int, int] | None:
  """The class each category of the first Cat code stands for, or None.

  Q's cluster -> class label by the Hungarian matching on the eval split
  (`metrics.hungarian_mapping`), as `test_error_hungarian` matches them; for a
  class-conditional generator (`Method.categories_are_classes`, no Cat head)
  category k is class k. None on datasets without class labels.
  """
  clusters = _first_head_clusters(context)
  if clusters is not None:
    return metrics.hungarian_mapping(context.outputs['labels'], clusters)
  if context.labelled and context.method.categories_are_classes:
    # A class-conditional generator: its category k was built from class k.
    return {k: k for k in range(int(context.config.codes.categorical[0]))}
  return None
