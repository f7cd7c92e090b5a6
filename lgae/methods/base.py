"""What a method (LatentGAN-AE, InfoGAN, AAE, ...) provides to the shared infrastructure.

The input pipeline, sharding, checkpointing, the training loop, metric writers,
evaluation, traversals, validation and the CLIs are written once; each method
is one module of `lgae.methods` that subclasses `Method`, plus one config in
`configs/` with `config.model_name` set to the method's `name`.

A method's train state is any pytree whose root has `step` (int32 scalar, the
number of combined updates done) and `rng` (the base key: step `s` draws from
`fold_in(rng, s)`), so that a step is a pure function of (state, batch):
resumable and identical on 1 or N devices. Its class identifies the method
(`lgae.methods.for_state`), so evaluation and plotting need no config to
dispatch.

`config.model` describes the networks of `config.model_name`: its fields (the
schema that `lgae.config_validation` checks) are the method's `model_config()`.
`config.codes` is the layout of the codes that `generate` decodes (noise,
Cat(K) codes, U(-1, 1) codes; `lgae.latent`). The other groups (dataset,
optimizer, loss, schedule) are shared; a method says in `validate` which of
their values it cannot use.
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import ml_collections

from lgae import latent

Metrics = dict[str, jax.Array]
State = Any   # a pytree with `step` and `rng` (see the module docstring).
Need = Callable[[bool, str], None]   # need(ok, message): records `message` if not ok.


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

  # --- Configuration -------------------------------------------------------

  @abc.abstractmethod
  def model_config(self) -> ml_collections.ConfigDict:
    """The fields (with defaults, commented) of `config.model` for this method."""

  def validate(self, config: ml_collections.ConfigDict, need: Need) -> None:
    """Method-specific value checks; call `need(ok, message)` for each.

    Messages name the field as `config.<dotted name>` and say what to do.
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

    Used by the representation traversal (`lgae.traversal`) when
    `decodes_representation`; the default (None) is for methods with no
    decoder that reads their scored representation.
    """
    del state, z
    return None

  def __repr__(self) -> str:
    return f'<lgae method {self.name!r}>'


# config.loss fields that act on the LatentGAN-AE's encoder or train its Q from
# the latents; a method without them must leave them at 0.
LATENTGAN_LOSS_TERMS = ('neighbour_weight', 'teacher_weight', 'encoder_adversarial_weight',
                        'encoder_entropy_weight')


def refuse_latentgan_loss_terms(config: ml_collections.ConfigDict, need: Need, method: str,
                                hint: str = '') -> None:
  """Each of `LATENTGAN_LOSS_TERMS` must be 0 for `method` (which has none of them)."""
  for name in LATENTGAN_LOSS_TERMS:
    value = config.loss.get(name, 0.0)
    need(value == 0, f'config.loss.{name}={value}: a LatentGAN-AE loss term the {method} does not '
         f'have{hint}; set it to 0.')


def need_a_code_for_q(config: ml_collections.ConfigDict, need: Need) -> None:
  """For methods with an InfoGAN Q head: at least one Cat or U code to infer."""
  c = config.codes
  need(len(c.categorical) + c.num_continuous > 0,
       'config.codes: no categorical and no continuous code; there is nothing for Q to learn.')
