"""The LatentGAN-AE's schedules as phases of the core's training loop.

'joint' (the paper): one phase, the combined update of the autoencoder, D/Q
and G on every batch of images (`step.train_step`).

'two_stage' (the l-GAN recipe of Achlioptas et al. 2018): an 'autoencoder'
phase of `two_stage.autoencoder_steps` steps (`step.autoencoder_step`), then
a 'latent_gan' phase whose input is built once when it starts: Enc(x) of the
whole train split, its k-NN graph and the teacher's labels
(`latent_cache.build`); G and D/Q then train on those cached latents alone
(`step.latent_gan_step`). A run may instead take its stage-1 autoencoder from
another run's checkpoint (`two_stage.autoencoder_workdir`, `start_state`).
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from lgae.core import checkpointing, latent
from lgae.core import method as method_lib
from lgae.core import state as core_state
from lgae.methods.latentgan_ae import latent_cache, step

# Fields the autoencoder's arrays depend on: a two-stage run may take its
# autoencoder from a run whose G, D/Q and codes differ, as long as these match.
AUTOENCODER_FIELDS = ('model.latent_dim', 'model.encoder_features', 'model.encoder_kernel',
                      'model.encoder_stride', 'model.decoder_upsample', 'model.decoder_features',
                      'model.decoder_kernel', 'dataset.image_size', 'dataset.channels')


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """Total steps; with 'two_stage' and num_train_steps = -1 they include stage 1."""
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  steps = int(config.num_epochs) * steps_per_epoch
  if config.schedule == 'two_stage':
    steps += int(config.two_stage.autoencoder_steps)
  return steps


def phases(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
           total_steps: int) -> list[method_lib.Phase]:
  """'joint': one phase; 'two_stage': the autoencoder, then the latent GAN on cached latents."""
  layout = latent.CodeLayout.from_config(config)
  if config.schedule != 'two_stage':
    return [method_lib.Phase('train', total_steps, functools.partial(
        step.train_step, config=config, layout=layout))]
  return [
      method_lib.Phase('autoencoder', int(config.two_stage.autoencoder_steps),
                       functools.partial(step.autoencoder_step, config=config)),
      method_lib.Phase('latent_gan', total_steps,
                       functools.partial(step.latent_gan_step, config=config, layout=layout,
                                         mesh=mesh),
                       prepare=functools.partial(latent_cache.build, config=config, mesh=mesh)),
  ]


def take_pretrained_autoencoder(state, config: ml_collections.ConfigDict,
                                mesh: jax.sharding.Mesh):
  """A fresh two-stage state with `two_stage.autoencoder_workdir`'s autoencoder.

  The donor run's latest checkpoint is read (never written); its autoencoder
  fields (`AUTOENCODER_FIELDS`) must equal ours; G, D/Q and the codes may
  differ. The state then starts at stage 2 (step autoencoder_steps).
  """
  donor_dir = config.two_stage.autoencoder_workdir
  holder = f'config.two_stage.autoencoder_workdir={donor_dir!r}'
  if not os.path.isdir(checkpointing.checkpoint_dir(donor_dir)):
    raise checkpointing.CheckpointError(
        f'{holder} holds no checkpoints ({checkpointing.checkpoint_dir(donor_dir)} does not '
        'exist): point it at the workdir of a finished latentgan_ae run, or clear it to train '
        'stage 1.')
  donor = checkpointing.Checkpointer(donor_dir, read_only=True)
  try:
    donor_config = donor.restore_config()
    if donor_config.get('model_name') != config.model_name:
      raise checkpointing.CheckpointError(
          f'{holder} holds a {donor_config.get("model_name")!r} run, not a '
          f'{config.model_name!r} one: its autoencoder cannot be taken.')
    checkpointing.check_resumable(donor_config, config, AUTOENCODER_FIELDS, holder=holder)
    donor_state = donor.restore_state(core_state.abstract_state(donor_config, mesh))
  finally:
    donor.close()
  logging.info('Autoencoder taken from %s (step %d).', donor_dir, int(donor_state.step))
  return state.replace(ae=donor_state.ae,
                       step=jnp.asarray(config.two_stage.autoencoder_steps, jnp.int32))
