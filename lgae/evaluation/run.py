"""Evaluation of a train state: the score families composed, samples, checkpoints.

`evaluate` runs the state's method once over the eval split
(`config.dataset.eval_split`; `outputs.collect`) and hands the outputs to each
score family of `FAMILIES` in turn; each is a module of `lgae.evaluation` that
declares the eval.json keys it writes (`KEYS`) and computes them (`scores`):

  * `clustering`: the paper's Table 1 protocol, Q's first categorical head
    against the class labels (labelled datasets only).
  * `reconstruction`: `recon_mse` (methods with a decoder).
  * `generation`: Frechet distance and label accuracy of generated images in
    the features of the dataset's classifier (`lgae.evaluation.classifier`).
  * `latent_diagnostics`: the generator against the encoder in latent space,
    and the clustering ceiling of the latent (`config.eval_latent_diagnostics`).
  * `cluster_agreement`: the label-free `cluster_neighbour_agreement`.
  * `disentanglement`: the five disentanglement metrics (datasets with
    ground-truth factors).

`CHECKPOINT_METRIC_KEYS`, the schema of eval.json, is `step` followed by the
families' keys in this order; a new score is a new family in `FAMILIES`.
Every key is defined in `experiments/docs/evaluation.md`. The scores
themselves are computed by the pure numpy cores of `lgae.evaluation.metrics`
and `lgae.evaluation.disentanglement`.

The names below that moved into the families' modules (`collect`,
`generation_scores`, `latent_diagnostics`, ...) stay importable from here.
"""

from typing import Any

import jax
import ml_collections
import numpy as np

from lgae.core import checkpointing, latent
from lgae.core import parallel
from lgae.core import state as state_lib
from lgae.evaluation import classifier as classifier_lib
from lgae.evaluation import cluster_agreement, clustering, disentanglement, generation
from lgae.evaluation import latent_diagnostics as latent_diagnostics_family
from lgae.evaluation import outputs as outputs_lib
from lgae.evaluation import plots, reconstruction

# The score families, in the order their keys are written to eval.json.
FAMILIES: tuple[outputs_lib.Family, ...] = (
    clustering, reconstruction, generation, latent_diagnostics_family, cluster_agreement,
    disentanglement)


def _checkpoint_metric_keys(families: tuple[outputs_lib.Family, ...]) -> tuple[str, ...]:
  """'step' then every family's keys, in order; raises if two families share a key."""
  keys = ('step',) + tuple(key for family in families for key in family.KEYS)
  repeated = sorted({key for key in keys if keys.count(key) > 1})
  if repeated:
    raise ValueError(f'Score families share the eval.json keys {repeated}.')
  return keys


# Keys of `evaluate_checkpoint_metrics`, in the order they are written.
CHECKPOINT_METRIC_KEYS = _checkpoint_metric_keys(FAMILIES)
# The disentanglement scores, for datasets with ground-truth factors (dSprites).
DISENTANGLEMENT_KEYS = disentanglement.KEYS

State = outputs_lib.State

# Kept here for the callers that import them from `run` (see the module docstring).
has_class_labels = outputs_lib.has_class_labels
eval_outputs = outputs_lib.eval_outputs
reconstruct = outputs_lib.reconstruct
has_decoder = outputs_lib.has_decoder
collect = outputs_lib.collect
generate_from_codes = generation.generate_from_codes
decode_codes = generation.decode_codes
generation_codes = generation.generation_codes
generation_scores = generation.generation_scores
generated_latents = latent_diagnostics_family.generated_latents
latent_diagnostics = latent_diagnostics_family.latent_diagnostics
disentanglement_scores = disentanglement.representation_scores


# -----------------------------------------------------------------------------
# The scores.
# -----------------------------------------------------------------------------


def family_scores(context: outputs_lib.Context,
                  families: tuple[outputs_lib.Family, ...] = FAMILIES) -> dict[str, float]:
  """Every family's scores of `context`, family by family in order.

  Raises:
    ValueError: a family wrote a key it does not declare in its `KEYS`.
  """
  scores = {}
  for family in families:
    result = family.scores(context)
    undeclared = [key for key in result if key not in family.KEYS]
    if undeclared:
      raise ValueError(f'The score family {getattr(family, "__name__", family)} wrote '
                       f'{undeclared}, which are not among its KEYS {family.KEYS}.')
    scores.update(result)
  return scores


def evaluate(state: State, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, *, split: str | None = None,
             classifier: classifier_lib.Classifier | None = None) -> dict[str, float]:
  """Every score family's scores on the eval split (those that apply), in eval.json's order.

  Clustering uses Q's first categorical head (MNIST: the Cat(10) code), the
  paper's Table 1 protocol, and is only reported for labelled datasets.
  Generation scores need `classifier`; without it they are omitted.
  """
  outputs = outputs_lib.collect(state, config, mesh, split=split, classifier=classifier)
  context = outputs_lib.Context(state=state, config=config, mesh=mesh, classifier=classifier,
                                outputs=outputs)
  return family_scores(context)


def evaluate_checkpoint_metrics(
    state: State, config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh, *, split: str | None = None,
    classifier: classifier_lib.Classifier | None = None) -> dict[str, float | int | None]:
  """`evaluate` as a dict with every key of `CHECKPOINT_METRIC_KEYS`.

  Keys that do not apply (clustering without class labels, generation without
  a classifier) are None, so files written from different datasets share one
  schema. Errors are in percent.
  """
  scores = evaluate(state, config, mesh, split=split, classifier=classifier)
  result = {key: scores.get(key) for key in CHECKPOINT_METRIC_KEYS}
  result['step'] = int(jax.device_get(state.step))
  if result['num_clusters_used'] is not None:
    result['num_clusters_used'] = int(result['num_clusters_used'])
  return result


# -----------------------------------------------------------------------------
# Samples for TensorBoard and figures.
# -----------------------------------------------------------------------------


def sample_images(state: State, config: ml_collections.ConfigDict,
                  key: jax.Array, num: int) -> np.ndarray:
  """`num` images Dec(G(p, c)) with all codes drawn from their priors: [num, H, W, C]."""
  layout = latent.CodeLayout.from_config(config)
  return parallel.to_host(decode_codes(state, latent.sample(key, layout, num), layout))


def sample_grid(state: State, config: ml_collections.ConfigDict,
                key: jax.Array, num_columns: int = 10) -> np.ndarray:
  """A Fig. 2 style uint8 grid: a row per category of the first Cat code, a column per noise draw.

  Without a Cat code it is a num_columns x num_columns grid of samples.
  """
  layout = latent.CodeLayout.from_config(config)
  if layout.categorical:
    rows = layout.categorical[0]
    codes = latent.category_grid(key, layout, 0, num_columns)
  else:
    rows = num_columns
    codes = latent.sample(key, layout, rows * num_columns)
  images = parallel.to_host(decode_codes(state, codes, layout))
  return plots.image_grid(np.asarray(images), rows, num_columns)


# -----------------------------------------------------------------------------
# Checkpoints.
# -----------------------------------------------------------------------------


def fit_eval_batch_size(config: ml_collections.ConfigDict,
                        num_devices: int) -> ml_collections.ConfigDict:
  """A copy of `config` whose `eval_batch_size` divides over `num_devices`.

  A checkpoint written on N devices may be evaluated on M; the eval batch size
  only sets the padding, which no score depends on, so rounding it down to a
  multiple of M (at least M) is safe.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  size = int(config.eval_batch_size)
  if size % num_devices:
    config.eval_batch_size = max(num_devices, size // num_devices * num_devices)
  return config


def load_checkpoint(workdir: str, step: int | None = None,
                    mesh: jax.sharding.Mesh | None = None
                    ) -> tuple[State, ml_collections.ConfigDict,
                               jax.sharding.Mesh]:
  """Restores `(state, config, mesh)` from `workdir` read-only.

  Args:
    workdir: a run directory written by `experiments.main`.
    step: the checkpoint step; None for the latest.
    mesh: where to place the state; default every device of this machine.
      The saved `eval_batch_size` is adjusted to divide over it.

  Returns:
    The replicated state, the saved config and the mesh.

  Raises:
    checkpointing.CheckpointError: no checkpoint, a damaged one, or one that
      does not match its own config.
  """
  mesh = mesh or parallel.make_mesh()
  checkpointer = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    config = checkpointer.restore_config(step)
    try:
      abstract = state_lib.abstract_state(config, mesh)
    except Exception as e:  # A config JSON that parses but is not a model.
      raise checkpointing.CheckpointError(
          f'The config saved in {checkpointer.directory} does not describe an lgae model '
          f'({type(e).__name__}: {e}).') from e
    state = checkpointer.restore_state(abstract, step)
  finally:
    checkpointer.close()
  return state, fit_eval_batch_size(config, mesh.devices.size), mesh


def json_ready(scores: dict[str, Any]) -> dict[str, Any]:
  """Non-finite floats become None, so the JSON is strict (no NaN tokens)."""
  return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
          for k, v in scores.items()}
