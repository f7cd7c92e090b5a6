"""The interface between a method (LatentGAN-AE, InfoGAN, AAE, ...) and the shared core.

The input pipeline, sharding, checkpointing, the training loop, metric writers,
evaluation, traversals, validation and the CLIs are written once and never name
a method; each method is one module (or package) of `lgae.methods` that
subclasses `Method`, plus one config in `configs/` with `config.model_name` set
to the method's `name`.

A method's train state is any pytree whose root has `step` (int32 scalar, the
number of updates done) and `rng` (the base key: step `s` draws from
`fold_in(rng, s)`), so that a step is a pure function of (state, batch):
resumable and identical on 1 or N devices. Its class identifies the method
(`for_state`), so evaluation and plotting need no config to dispatch.

The config schema of a method is `lgae.core.config.base_config()` updated by
its `config_fields()` (at least its `config.model` group). `config.codes` is
the layout of the codes that `generate` decodes (noise, Cat(K) codes, U(-1, 1)
codes; `lgae.core.latent`).

Training runs the method's `phases`: by default one phase that applies
`train_step` to every batch of images; a method with a schedule (the
LatentGAN-AE's two stages) declares several, each with its own step function
and its own input (image batches, or data the phase prepares once when it
starts, such as a cache of latents).

Methods are found by name through the table that `lgae.methods` installs in
`lgae.core.registry`, and by state through the class each method declares
(`state_type`): the core never imports a method.
"""

import abc
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import ml_collections

from lgae.core import latent, registry

Metrics = dict[str, jax.Array]
State = Any   # a pytree with `step` and `rng` (see the module docstring).
Need = Callable[[bool, str], None]   # need(ok, message): records `message` if not ok.

# What a phase's step reads each step: the input pipeline's next global batch
# of images (split over the devices), or what the phase's `prepare` built.
IMAGES = 'images'


@dataclasses.dataclass(frozen=True)
class Phase:
  """A stretch of training run by one step function.

  Attributes:
    name: for logs ('train', 'autoencoder', 'latent_gan', ...).
    end: the step (exclusive) where the phase ends; phases run in order, each
      from the previous one's end (the first from 0).
    step: `step(state, data) -> (state, metrics)`, pure (the loop jits it with
      the state replicated and donated).
    prepare: None to feed `IMAGES` (each step gets a global batch, split over
      the devices); else `prepare(state, cache_dir) -> data`, called once when
      the phase starts (or resumes), and every step of the phase gets that same
      `data` (replicated; the step splits its work over the mesh itself).
      `cache_dir` is the phase's own directory in the workdir
      (`<workdir>/phase_cache/<name>`, not created by the loop), where process 0
      may keep what is costly to prepare, so that a resume need not redo it.
  """

  name: str
  end: int
  step: Callable[[Any, Any], tuple[Any, Metrics]]
  prepare: Callable[[Any], Any] | None = None


def get(name: str) -> 'Method':
  """The method called `name` (a `config.model_name`); ValueError if none is."""
  return registry.get(name)


def for_config(config: ml_collections.ConfigDict) -> 'Method':
  """The method of `config.model_name`."""
  return get(config.model_name)


def for_state(state: Any) -> 'Method':
  """The method whose train state `state` is (dispatch by the state's class)."""
  return registry.for_state(state)


class Method(abc.ABC):
  """One system: its networks, its state, its combined step, and what evaluation needs."""

  # The value of config.model_name that selects this method.
  name: ClassVar[str]
  # The state class (a flax.struct.PyTreeNode) this method's init_state returns.
  state_type: ClassVar[type]
  # Whether eval_outputs returns 'recon' (reconstruction scores and figures).
  has_decoder: ClassVar[bool] = False
  # Whether generated_latents is implemented (a generator in representation space).
  has_latent_generator: ClassVar[bool] = False
  # Whether decode_representation is implemented (a decoder that reads eval_outputs' 'z').
  decodes_representation: ClassVar[bool] = False
  # Whether category k of the first Cat code *is* class k (a class-conditional
  # generator built from labels). Evaluation then scores the generated images
  # against the identity map category -> class when the method has no cluster
  # head to match categories to classes with (`evaluation.evaluate`).
  categories_are_classes: ClassVar[bool] = False
  # Dotted config fields that choose only how the same function is computed
  # (same arrays, same results up to rounding): a run may resume with another
  # value (e.g. a CPU-friendly op order, then a TPU one).
  compute_only_fields: ClassVar[tuple[str, ...]] = ()

  # --- Configuration -------------------------------------------------------

  @abc.abstractmethod
  def model_config(self) -> ml_collections.ConfigDict:
    """The fields (with defaults, commented) of `config.model` for this method."""

  def config_fields(self) -> ml_collections.ConfigDict:
    """The fields this method adds to `lgae.core.config.base_config()`.

    A ConfigDict of groups and fields, merged into the base config field by
    field (a group here extends the base's group of the same name). Default:
    `config.model` alone.
    """
    fields = ml_collections.ConfigDict()
    fields.model = self.model_config()
    return fields

  def validate(self, config: ml_collections.ConfigDict, need: Need) -> None:
    """Method-specific value checks; call `need(ok, message)` for each.

    Messages name the field as `config.<dotted name>` and say what to do.
    Values only: what the dataset must offer goes in `validate_dataset`.
    """

  def validate_dataset(self, config: ml_collections.ConfigDict, need: Need) -> None:
    """Method-specific checks of the dataset (e.g. class labels); `need` as in `validate`.

    Run only when the dataset is checked (it may read tfds metadata, and so
    import TensorFlow), after the shared dataset checks found the dataset.
    """

  # --- Networks and state ----------------------------------------------------

  @abc.abstractmethod
  def build_models(self, config: ml_collections.ConfigDict) -> Any:
    """The method's flax modules (any structure), built from `config`."""

  @abc.abstractmethod
  def init_state(self, key: jax.Array, config: ml_collections.ConfigDict, models: Any) -> State:
    """A fresh state at step 0. Pure: the caller wraps it in jit / eval_shape."""

  @abc.abstractmethod
  def train_step(self, state: State, batch: dict[str, jax.Array], *,
                 config: ml_collections.ConfigDict) -> tuple[State, Metrics]:
    """One combined update of every network on one global batch (`batch['image']`).

    Pure: every random draw comes from fold_in(state.rng, state.step); returns
    the state at step + 1 and scalar metrics (losses) for logging.
    """

  # --- Schedule -------------------------------------------------------------

  def num_train_steps(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """Total steps of a run: `num_train_steps`, or `num_epochs` epochs when it is -1."""
    if config.num_train_steps > 0:
      return int(config.num_train_steps)
    return int(config.num_epochs) * steps_per_epoch

  def phases(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
             total_steps: int) -> list[Phase]:
    """The phases training runs, in order; the last one ends at `total_steps`.

    Default: one phase of `train_step` on image batches.
    """
    del mesh
    return [Phase('train', total_steps, functools.partial(self.train_step, config=config))]

  def start_state(self, state: State, config: ml_collections.ConfigDict,
                  mesh: jax.sharding.Mesh) -> State:
    """The state a fresh run starts from, given the freshly initialised `state`.

    Default: `state`. A method may take parts of it from elsewhere (e.g. a
    pretrained network from another run's checkpoint) and start at a later step.
    """
    del config, mesh
    return state

  # --- What evaluation and the figures need ----------------------------------

  def code_layout(self, config: ml_collections.ConfigDict) -> latent.CodeLayout:
    """The codes `generate` takes (default: `config.codes`)."""
    return latent.CodeLayout.from_config(config)

  @abc.abstractmethod
  def eval_outputs(self, state: State, images: jax.Array) -> dict[str, Any]:
    """Inference-mode outputs on real images.

    Returns:
      {'z': [N, D] the representation scored by the neighbour and
       disentanglement metrics, 'cat_logits': tuple of [N, K] (the first is
       the cluster assignment, argmax; empty tuple if none)} and, for methods
       with a decoder, 'recon': [N, H, W, C] Dec(Enc(x)).
    """

  @abc.abstractmethod
  def generate(self, state: State, codes: latent.Codes, layout: latent.CodeLayout) -> jax.Array:
    """Images [N, H, W, C] in [-1, 1] from codes of `layout` (inference mode)."""

  def generated_latents(self, state: State, codes: latent.Codes,
                        layout: latent.CodeLayout) -> jax.Array | None:
    """The representation space's fakes for `codes` (a latent GAN's G(p, c)), or None.

    Used by the latent diagnostics (G's fit of the encoder's latents); None
    where the method has no generator in representation space.
    """
    del state, codes, layout
    return None

  def decode_representation(self, state: State, z: jax.Array) -> jax.Array | None:
    """Images [N, H, W, C] decoded from representations z (eval_outputs' 'z').

    Used by the representation traversal (`lgae.evaluation.traversal`) when
    `decodes_representation`; the default (None) is for methods with no
    decoder that reads their scored representation.
    """
    del state, z
    return None

  def __repr__(self) -> str:
    return f'<lgae method {self.name!r}>'


def need_a_code_for_q(config: ml_collections.ConfigDict, need: Need) -> None:
  """For methods with an InfoGAN Q head: at least one Cat or U code to infer."""
  c = config.codes
  need(len(c.categorical) + c.num_continuous > 0,
       'config.codes: no categorical and no continuous code; there is nothing for Q to learn.')
