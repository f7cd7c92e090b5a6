"""Score family: label-free agreement of the clusters with the latent geometry.

`cluster_neighbour_agreement` is how often a test latent's 10 nearest test
latents fall in its cluster (the method's first categorical head). It needs no
labels, so it can compare runs or restarts where no labels exist: over 19
finished MNIST runs it ranks them as their Hungarian error does
(`experiments/docs/evaluation.md`, `cluster_neighbour_agreement`; the study:
`experiments/docs/research_log.md`, "Seed robustness"), and
`experiments.sweep --select_by=cluster_neighbour_agreement` chooses among
restarts by it.
"""

from lgae.evaluation import metrics
from lgae.evaluation import outputs as outputs_lib

KEYS = ('cluster_neighbour_agreement',)


def scores(context: outputs_lib.Context) -> dict[str, float]:
  """{'cluster_neighbour_agreement': fraction} for methods with a Cat head, else {}."""
  z, clusters = context.outputs['z'], context.outputs['clusters']
  if not clusters.shape[1] or len(z) <= 1:
    return {}
  return {'cluster_neighbour_agreement': metrics.neighbour_label_agreement(
      z, clusters[:, 0], k=min(10, len(z) - 1))}
