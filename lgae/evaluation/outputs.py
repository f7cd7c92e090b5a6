"""The shared pass over the eval split that every score family reads.

`collect` runs the state's method (`Method.eval_outputs`, jitted on fixed-size
padded batches, so it compiles once) over a whole split and returns unpadded
numpy arrays. `Context` bundles those outputs with the state, the config, the
mesh and the optional feature classifier; a score family (one module of
`lgae.evaluation`, composed by `lgae.evaluation.run`) is anything with

  KEYS: tuple[str, ...]    the eval.json keys it may write, in their order;
  scores(context) -> dict  those of its keys that apply to this run.

A family that needs more than the shared outputs (generated images, another
split) computes it from the context itself.
"""

import dataclasses
import functools
from typing import Protocol

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lgae.core import method as method_lib
from lgae.core import parallel
from lgae.data import input_pipeline
from lgae.evaluation import classifier as classifier_lib

State = method_lib.State


def has_class_labels(config: ml_collections.ConfigDict) -> bool:
  """Whether the dataset's labels are classes (clustering scores make sense).

  Read from the dataset's tfds features: a ClassLabel `label` feature.
  CelebA and 3D Chairs carry a constant label 0 in our pipeline instead.
  """
  return input_pipeline.has_class_labels(config)


def eval_outputs(state, images: jax.Array) -> dict[str, jax.Array]:
  """Per-example outputs of the state's method on real images (inference mode).

  Returns {'clusters': [N, num_cat_codes] int32 (argmax of each Cat head; the
  first is the Table 1 assignment), 'z': [N, D] the method's representation}
  and, for methods with a decoder, 'sq_err': [N] per-example reconstruction MSE.
  """
  out = method_lib.for_state(state).eval_outputs(state, images)
  cat_logits = out['cat_logits']
  clusters = (jnp.stack([jnp.argmax(l, axis=-1) for l in cat_logits], axis=1)
              if cat_logits else jnp.zeros((images.shape[0], 0), jnp.int32))
  result = {'clusters': clusters.astype(jnp.int32), 'z': out['z']}
  if 'recon' in out:
    # recon_mse's one home: per-example mean squared error on device (so no
    # image leaves the devices); the reconstruction family averages it over
    # the unpadded examples. Tested against an independent numpy computation.
    result['sq_err'] = jnp.mean(jnp.square(images - out['recon']), axis=(1, 2, 3))
  return result


@jax.jit
def reconstruct(state, images: jax.Array) -> jax.Array:
  """Dec(Enc(x)) in inference mode (methods with a decoder only)."""
  return method_lib.for_state(state).eval_outputs(state, images)['recon']


def has_decoder(state) -> bool:
  """Whether the state's method reconstructs images (eval_outputs has 'recon')."""
  return method_lib.for_state(state).has_decoder


@functools.lru_cache(maxsize=8)
def _jitted_eval_outputs(mesh: jax.sharding.Mesh):
  rep = parallel.replicated(mesh)
  return jax.jit(eval_outputs, in_shardings=(rep, parallel.batch_sharded(mesh)),
                 out_shardings=rep)


def collect(state: State, config: ml_collections.ConfigDict,
            mesh: jax.sharding.Mesh, *, split: str | None = None,
            classifier: classifier_lib.Classifier | None = None) -> dict[str, np.ndarray]:
  """Runs `eval_outputs` over a whole split; returns unpadded numpy arrays.

  Returns:
    {'labels': [N], 'clusters': [N, num_cat_codes], 'z': [N, D]}, 'sq_err': [N]
    for methods with a decoder, plus 'features' (and, with a decoder,
    'recon_features'): [N, F] (the classifier's features of x and of
    Dec(Enc(x))) if `classifier` is given,
    and 'factors': [N, num_factors] where the dataset has ground-truth factors.
  """
  parallel.check_divisible(config.eval_batch_size, mesh, field='eval_batch_size')
  fn = _jitted_eval_outputs(mesh)
  decoder = has_decoder(state)
  keys = ('clusters', 'z') + (('sq_err',) if decoder else ()) + (
      ('features',) if classifier is not None else ()) + (
      ('recon_features',) if classifier is not None and decoder else ())
  parts = {k: [] for k in ('labels',) + keys}
  for batch in input_pipeline.eval_iterator(config, split=split, **parallel.process_shard()):
    # Each process holds its rows; labels and mask come back whole (to_host),
    # so every process scores the same global batch, whatever their number.
    placed = parallel.shard_batch(batch, mesh)
    out = fn(state, placed['image'])
    if classifier is not None:
      out['features'] = classifier.features(placed['image'])
      if decoder:
        out['recon_features'] = classifier.features(reconstruct(state, placed['image']))
    out['label'], out['mask'] = placed['label'], placed['mask']
    if 'factors' in placed:
      out['factors'] = placed['factors']
    out = parallel.to_host(out)
    keep = out['mask'] > 0
    parts['labels'].append(out['label'][keep])
    if 'factors' in out:
      parts.setdefault('factors', []).append(out['factors'][keep])
    for k in keys:
      parts[k].append(out[k][keep])
  return {k: np.concatenate(v) for k, v in parts.items()}


def shard_indices(indices: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """A global batch of indices (known to every process) split over `mesh`."""
  rows = input_pipeline.process_rows(len(indices), jax.process_index(), jax.process_count())
  return parallel.shard_batch({'i': indices[rows]}, mesh)['i']


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
  """What every score family is computed from.

  Attributes:
    state: the train state.
    config: its config (`seed`, `eval_batch_size`, `codes`, `dataset`, ...).
    mesh: the device mesh (`eval_batch_size` divides over it).
    classifier: the feature classifier of the generation scores, or None.
    outputs: `collect` of the eval split (with the classifier's features
      where `classifier` is given).
  """

  state: State
  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  classifier: classifier_lib.Classifier | None
  outputs: dict[str, np.ndarray]

  @functools.cached_property
  def labelled(self) -> bool:
    """`has_class_labels(config)`, read once from the tfds features."""
    return has_class_labels(self.config)

  @property
  def method(self) -> method_lib.Method:
    return method_lib.for_state(self.state)


class Family(Protocol):
  """A score family: a module with these two names (see the module docstring)."""

  KEYS: tuple[str, ...]

  def scores(self, context: Context) -> dict[str, float]:
    ...
