"""lgae's conv encoder and decoder (`lgae.nets.conv`) as a VAE-like autoencoder, N(0, I) prior.

Shared by the beta-VAE (`lgae.methods.beta_vae`) and the WAE
(`lgae.methods.wae`): the `config.model` fields of the conv encoder and
decoder and their checks, `ConvAutoencoder` (the two networks with a linear
layer in between), the capture of the decoder's pre-tanh output (the
Bernoulli logits of `lgae.objectives.vae.reconstruction_loss`), and the
train-mode forward, update and inference-mode encoding and decoding of a
state whose `ae` is such an autoencoder.
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lgae.core import state as state_lib
from lgae.nets import conv

# The config.model fields of the conv encoder and decoder (named as the
# LatentGAN-AE's, whose dataset configs hold the tables).
CONV_AUTOENCODER_FIELDS = ('latent_dim', 'encoder_features', 'encoder_kernel', 'encoder_stride',
                           'decoder_upsample', 'decoder_features', 'decoder_kernel',
                           'batch_norm_momentum', 'decoder_upsample_conv')


def conv_autoencoder_config(latent_dim: int) -> ml_collections.ConfigDict:
  """The encoder/decoder fields of `config.model`, named as the LatentGAN-AE's.

  Defaults are the LatentGAN-AE's MNIST table (Kalwar et al. Table 2,
  configs/mnist.py); dataset configs overwrite them with their own table.

  Args:
    latent_dim: the width of z (the encoder's fc output is sized by each
      method from it).
  """
  m = conv.model_config(latent_dim)   # z width: the prior N(0, I) lives in R^latent_dim.
  # Not a LatentGAN-AE field: a linear fc from z to this width before the
  # decoder's relu (see ConvAutoencoder: without it the decoder cannot read
  # negative coordinates of z); 0 = none. 256 is our choice, the width of
  # the fc layers that open the usual conv VAE decoders on dSprites.
  m.decoder_fc = 256
  # 'bernoulli' (cross-entropy on the decoder's logits; binary images such
  # as dSprites) or 'mse' (`lgae.objectives.vae.reconstruction_loss`).
  m.reconstruction = 'bernoulli'
  return m


def validate_conv_autoencoder(config: ml_collections.ConfigDict,
                              need: Callable[[bool, str], None], method: str) -> None:
  """The checks every conv encoder/decoder method needs (`method` names it in messages).

  No Cat or U codes, the code width equal to z's, the N(0, I) prior, and the
  image geometry: the encoder must reduce the image to 1x1 and the decoder
  rebuild it (`conv.validate_geometry`). `model.reconstruction` is the
  method's to check (`lgae.objectives.vae.RECONSTRUCTIONS`).
  """
  m, c = config.model, config.codes
  categorical = tuple(c.categorical)
  need(len(categorical) == 0,
       f'config.codes.categorical={categorical}: the {method} has no categorical code (its '
       'prior is N(0, I) on z); set it to ().')
  need(c.num_continuous == 0,
       f'config.codes.num_continuous={c.num_continuous}: the {method} has no U(-1, 1) codes; '
       'set it to 0.')
  need(c.noise_dim == m.latent_dim,
       f'config.codes.noise_dim={c.noise_dim}: generate() decodes prior draws of z, so it must '
       f'equal config.model.latent_dim={m.latent_dim}.')
  need(c.get('noise', 'normal') == 'normal',
       f"config.codes.noise={c.get('noise')!r}: the {method}'s prior is N(0, I); set it to "
       "'normal'.")

  need(m.decoder_fc >= 0, f'config.model.decoder_fc={m.decoder_fc} must be >= 0 (0: none).')
  conv.validate_geometry(config, need)


class ConvAutoencoder(nn.Module):
  """lgae's conv encoder and decoder in one module, with a linear layer in between.

  `conv.Decoder` starts with relu(z): fine for the LatentGAN-AE, whose
  decoder reads a free code, but under an N(0, I) prior it would map every
  negative coordinate to 0, so that half of each coordinate's range could not
  be decoded (z_i = -1 and z_i = -2 would give the same image). A linear
  fc(decoder_fc) before it (the fc-relu that opens the beta-VAE's and the
  usual conv VAEs' decoders) lets the decoder read all of z. decoder_fc = 0
  feeds z to `conv.Decoder` directly, as the LatentGAN-AE does.

  Attributes:
    encoder: `conv.Encoder` (its fc width is the method's).
    decoder: `conv.Decoder`.
    decoder_fc: width of the linear layer from z to the decoder's input; 0: none.
  """

  encoder: conv.Encoder
  decoder: conv.Decoder
  decoder_fc: int = 0

  def setup(self):
    if self.decoder_fc > 0:
      self.decoder_input = nn.Dense(self.decoder_fc)

  def encode(self, images: jax.Array) -> jax.Array:
    return self.encoder(images)

  def decode(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    """z [N, latent_dim] -> images [N, H, W, C] in [-1, 1]."""
    if self.decoder_fc > 0:
      z = self.decoder_input(z)
    return self.decoder(z, train=train)

  def __call__(self, images: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """Returns (z = Enc(x), Dec(z))."""
    z = self.encode(images)
    return z, self.decode(z, train=train)


def is_decoder_output_conv(module: nn.Module, method_name: str) -> bool:
  """capture_intermediates filter: the decoder's last conv, whose output a gives Dec = tanh(a).

  Used to read the Bernoulli logits 2a without changing `conv.Decoder`.
  """
  return method_name == '__call__' and module.name == 'conv_out'


def pre_tanh_output(intermediates: Any) -> jax.Array:
  """The decoder's last conv output a (Dec = tanh(a)) from captured intermediates."""
  return intermediates['decoder']['conv_out']['__call__'][0]


def train_forward(ae: Any, params: Any, *inputs) -> tuple[Any, jax.Array, Any]:
  """Train-mode forward of an autoencoder state `ae` at `params` (BatchNorm on batch statistics).

  Returns (the module's outputs, the decoder's pre-tanh output, the updated
  BatchNorm statistics).
  """
  outputs, mutated = ae.apply_fn(
      state_lib.variables(ae, params), *inputs, train=True, mutable=['batch_stats'],
      capture_intermediates=is_decoder_output_conv)
  return outputs, pre_tanh_output(mutated['intermediates']), mutated['batch_stats']


def update(state: Any, loss_fn: Callable[[Any], tuple[jax.Array, tuple[Any, Any]]]
           ) -> tuple[Any, Any]:
  """One step of `state.ae` down loss_fn(params) -> (loss, (metrics, new batch_stats)).

  Returns (the state at step + 1, metrics).
  """
  (_, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.ae.params)
  new_ae = state.ae.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
  return state.replace(step=state.step + 1, ae=new_ae), metrics


def encode_images(state: Any, images: jax.Array) -> Any:
  """Enc(images) in inference mode for any state with `ae`."""
  return state_lib.apply(state.ae, images, method='encode')


def decode_images(state: Any, z: jax.Array) -> jax.Array:
  """Dec(z) in inference mode (BatchNorm running averages) for any state with `ae`."""
  return state_lib.apply(state.ae, z, method='decode')


def init_autoencoder(model: nn.Module, key: jax.Array, config: ml_collections.ConfigDict,
                     *extra_inputs: jax.Array) -> Any:
  """The train state of `model` (images of config.dataset, then `extra_inputs`), with the
  autoencoder's Adam (`state_lib.network_state`)."""
  size, channels = config.dataset.image_size, config.dataset.channels
  variables = model.init(key, jnp.zeros((1, size, size, channels)), *extra_inputs, train=False)
  return state_lib.network_state(model, variables, config, 'autoencoder')
