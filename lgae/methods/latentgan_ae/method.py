"""The LatentGAN Autoencoder (Kalwar et al.) behind the `lgae.core.method.Method` interface.

This module says how the core uses the package's pieces: the config fields
(`config.py`), the networks (`networks.py`), the train state (`state.py`), the
combined step (`step.py`) and the schedules (`schedule.py`).
"""

import ml_collections

from lgae.core import latent
from lgae.core.config_validation import positive_ints
from lgae.core import method as method_lib
from lgae.methods.latentgan_ae import config as config_lib
from lgae.methods.latentgan_ae import latent_teacher, networks, schedule, step
from lgae.methods.latentgan_ae import state as state_lib
from lgae.nets import conv

# Values of config.schedule (`schedule.py`).
SCHEDULES = ('joint', 'two_stage')




class LatentGANAE(method_lib.Method):
  """Conv autoencoder + a latent GAN (G, D/Q with shared trunk) trained together."""

  name = 'latentgan_ae'
  state_type = state_lib.LatentGANState
  has_decoder = True
  decodes_representation = True
  has_latent_generator = True
  compute_only_fields = ('model.decoder_upsample_conv',)

  def model_config(self) -> ml_collections.ConfigDict:
    return config_lib.model_config()

  def config_fields(self) -> ml_collections.ConfigDict:
    return config_lib.config_fields()

  def validate(self, config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
    method_lib.need_a_code_for_q(config, need)
    m = config.model
    for name in ('generator_hidden', 'discriminator_hidden'):
      need(positive_ints(m[name]) and len(m[name]) > 0,
           f'config.model.{name}={tuple(m[name])} must be a non-empty sequence of positive ints.')
    conv.validate_geometry(config, need)
    _validate_schedule(config, need)

  def build_models(self, config):
    return networks.build_models(config)

  def init_state(self, key, config, models):
    return state_lib.init_state(key, config, models)

  def train_step(self, state, batch, *, config):
    return step.train_step(state, batch, config=config,
                           layout=latent.CodeLayout.from_config(config))

  def num_train_steps(self, config, steps_per_epoch):
    return schedule.num_train_steps(config, steps_per_epoch)

  def phases(self, config, mesh, total_steps):
    return schedule.phases(config, mesh, total_steps)

  def start_state(self, state, config, mesh):
    if config.schedule == 'two_stage' and config.two_stage.autoencoder_workdir:
      return schedule.take_pretrained_autoencoder(state, config, mesh)
    return state

  def eval_outputs(self, state, images):
    # The autoencoder in inference mode (BatchNorm running averages); Q reads Enc(x).
    z, recon = state.ae.apply_fn(
        {'params': state.ae.params, 'batch_stats': state.ae.batch_stats}, images, train=False)
    out = state.disc.apply_fn({'params': state.disc.params}, z)
    return {'z': z, 'cat_logits': tuple(out['cat_logits']), 'recon': recon}

  def generate(self, state, codes, layout):
    return self.decode_representation(state, self.generated_latents(state, codes, layout))

  def decode_representation(self, state, z):
    # Dec(z): the scored representation is Enc(x), the latent Dec reads.
    return state.ae.apply_fn({'params': state.ae.params, 'batch_stats': state.ae.batch_stats},
                             z, method='decode')

  def generated_latents(self, state, codes, layout):
    return state.gen.apply_fn({'params': state.gen.params},
                              latent.generator_input(codes, layout))


def _validate_schedule(config: ml_collections.ConfigDict, need: method_lib.Need) -> None:
  """The schedule's fields and the loss terms that only one schedule can use."""
  ts, lc = config.two_stage, config.loss
  need(config.schedule in SCHEDULES,
       f'config.schedule={config.schedule!r} must be one of {SCHEDULES}.')
  need(ts.autoencoder_steps >= 0,
       f'config.two_stage.autoencoder_steps={ts.autoencoder_steps} must be >= 0.')
  need(ts.num_neighbours > 0,
       f'config.two_stage.num_neighbours={ts.num_neighbours} must be > 0.')
  for name in ('encoder_adversarial_weight', 'encoder_entropy_weight', 'neighbour_weight',
               'neighbour_entropy_weight', 'teacher_weight'):
    need(lc[name] >= 0, f'config.loss.{name}={lc[name]} must be >= 0.')
  # .get: configs saved before this field existed restore without it.
  gan_weight = lc.get('gan_weight', 1.0)
  need(gan_weight >= 0, f'config.loss.gan_weight={gan_weight} must be >= 0 (1 = the method).')
  need(lc.get('teacher_gan_steps', 0) >= 0,
       f'config.loss.teacher_gan_steps={lc.get("teacher_gan_steps")} must be >= 0 '
       '(0 = the whole of stage 2).')
  if config.schedule == 'two_stage':
    need(ts.autoencoder_steps > 0 or bool(ts.autoencoder_workdir),
         'config.two_stage.autoencoder_steps=0 would train the latent GAN on an untrained '
         'encoder: give stage 1 steps, or two_stage.autoencoder_workdir.')
    need(config.num_train_steps == -1 or config.num_train_steps > ts.autoencoder_steps,
         f'config.num_train_steps={config.num_train_steps} leaves no latent-GAN steps after '
         f'two_stage.autoencoder_steps={ts.autoencoder_steps} (it counts both stages).')
    for name in ('encoder_adversarial_weight', 'encoder_entropy_weight'):
      need(lc[name] == 0,
           f'config.loss.{name}={lc[name]}: the two-stage schedule freezes the encoder before '
           "the latent GAN trains, so this term has nothing to act on; set it to 0 or use "
           "schedule='joint'.")
    need(ts.teacher_dims >= 2, f'config.two_stage.teacher_dims={ts.teacher_dims} must be >= 2.')
    need(ts.teacher_gmm_inits >= 1,
         f'config.two_stage.teacher_gmm_inits={ts.teacher_gmm_inits} must be >= 1.')
    need(gan_weight > 0 or lc.teacher_weight > 0 or lc.neighbour_weight > 0,
         'config.loss.gan_weight=0 leaves Q nothing to learn from: set '
         'config.loss.teacher_weight or config.loss.neighbour_weight > 0, or gan_weight > 0.')
    if lc.teacher_weight > 0:
      try:
        latent_teacher.check_available()
      except latent_teacher.TeacherUnavailableError as e:
        need(False, str(e))
  else:
    need(lc.teacher_weight == 0,
         f'config.loss.teacher_weight={lc.teacher_weight} needs '
         "config.schedule='two_stage' (the teacher clusters the cached latents).")
    need(lc.neighbour_weight == 0,
         f'config.loss.neighbour_weight={lc.neighbour_weight} needs '
         "config.schedule='two_stage' (the neighbours are those of the cached latents).")
    need(gan_weight == 1.0,
         f'config.loss.gan_weight={gan_weight} is a two-stage ablation; the joint schedule '
         "trains the paper's latent GAN (gan_weight=1): set it to 1 or use "
         "schedule='two_stage'.")
    need(not ts.autoencoder_workdir,
         "config.two_stage.autoencoder_workdir is set but config.schedule='joint'; use "
         "schedule='two_stage' or clear it.")
