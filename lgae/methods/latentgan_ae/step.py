"""The combined LatentGAN-AE update: one jitted function per batch.

Order inside one step (all three use the same batch and the same codes):

1. Autoencoder: z = Enc(x), x_hat = Dec(z); MSE (Eq. 1) -> ae params and
   BatchNorm statistics. (Optionally adversarial / Q-entropy terms on z; see
   `config.loss.encoder_adversarial_weight`, `encoder_entropy_weight`.)
2. D/Q: D sees stop_gradient(z) as real and stop_gradient(G(p, c)) as fake
   (BCE with configurable noisy labels, Eq. 2); Q's heads on the same fake
   forward give the MI loss (Eq. 3), weighted by lambda_disc / lambda_cont. The
   sum updates D's trunk, D's head and Q's heads in one optimiser step, as
   InfoGAN's reference code does; the fake batch is the same G(p, c) the G
   update below starts from, because G is updated last.
3. G: non-saturating GAN loss plus the same weighted MI loss through the
   freshly updated D/Q (held fixed) -> generator params.

Every random draw comes from fold_in(state.rng, state.step), so a step is a
pure function of (state, batch): resumable and identical on 1 or N devices.

The two-stage schedule (`config.schedule = 'two_stage'`) splits the same
updates in time: `autoencoder_step` (1. alone), then `latent_gan_step` (2. and
3. on batches of a cache of frozen Enc(x), see `lgae.methods.latentgan_ae.latent_cache`).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lgae.core import latent, parallel
from lgae.objectives import clustering, gan, info, reconstruction
from lgae.methods.latentgan_ae import state as state_lib

Metrics = dict[str, jax.Array]


def _autoencoder_update(state: state_lib.LatentGANState, images: jax.Array,
                        lc: ml_collections.ConfigDict):
  """Step 1: the AE's reconstruction update (and the optional encoder terms).

  Returns (new AE state, z = Enc(x) under the old parameters, metrics).
  """

  def ae_loss_fn(params):
    (z, recon), updates = state.ae.apply_fn(
        {'params': params, 'batch_stats': state.ae.batch_stats}, images, train=True,
        mutable=['batch_stats'])
    recon_loss = reconstruction.reconstruction_loss(images, recon)
    total = recon_loss
    aux = {'recon_loss': recon_loss}
    if lc.encoder_adversarial_weight > 0 or lc.encoder_entropy_weight > 0:
      # Options that let the latent GAN shape the encoder (D/Q held fixed here).
      out = state.disc.apply_fn({'params': state.disc.params}, z)
      if lc.encoder_adversarial_weight > 0:
        # AAE-style: pull Enc(x) towards G's code-structured distribution by
        # trying to make D call it fake.
        enc_adv = gan.encoder_adversarial_loss(out['logit'])
        total += lc.encoder_adversarial_weight * enc_adv
        aux['encoder_adv_loss'] = enc_adv
      if lc.encoder_entropy_weight > 0:
        # Make Q's categorical prediction on real latents confident.
        entropy = info.categorical_entropy(out['cat_logits'])
        total += lc.encoder_entropy_weight * entropy
        aux['encoder_q_entropy'] = entropy
    return total, (z, updates['batch_stats'], aux)

  (_, (z, batch_stats, metrics)), grads = jax.value_and_grad(
      ae_loss_fn, has_aux=True)(state.ae.params)
  return state.ae.apply_gradients(grads=grads, batch_stats=batch_stats), z, metrics


def _gan_update(state: state_lib.LatentGANState, real_z: jax.Array, key: jax.Array,
                lc: ml_collections.ConfigDict, layout: latent.CodeLayout,
                neighbour_z: jax.Array | None = None, teacher: jax.Array | None = None,
                teacher_weight: jax.Array | float = 0.0):
  """Steps 2 and 3: D/Q, then G, against the real latents `real_z` (no gradient).

  `neighbour_z` (two-stage only): a nearest neighbour of each real latent,
  for the neighbour-consistency term on Q's real-latent predictions.
  `teacher` (two-stage only): each real latent's `lgae.methods.latentgan_ae.latent_teacher`
  cluster, the target of Q's first Cat head on it, with weight
  `teacher_weight` (`loss.teacher_weight`, or 0 after `loss.teacher_gan_steps`).

  Returns (new G state, new D/Q state, metrics).
  """
  batch_size = real_z.shape[0]
  gan_weight = lc.get('gan_weight', 1.0)
  if gan_weight == 0:   # the no-GAN ablation: Q on the real latents only, G untouched.
    return _real_latent_update(state, real_z, lc, neighbour_z, teacher, teacher_weight)
  k_codes, k_real, k_fake = jax.random.split(key, 3)
  codes = latent.sample(k_codes, layout, batch_size)
  g_input = latent.generator_input(codes, layout)

  # G's forward is run once, here: its output is D's fake batch, and its VJP
  # is reused for G's own update in step 3 (G's parameters have not changed in
  # between), so G is not recomputed.
  fake_z, gen_vjp = jax.vjp(
      lambda params: state.gen.apply_fn({'params': params}, g_input), state.gen.params)
  real_targets, fake_targets = gan.discriminator_targets(k_real, k_fake, batch_size, lc)

  mi_losses = lambda out: info.weighted_mi_losses(out, codes, lc)

  parts = [real_z, fake_z] + ([neighbour_z] if neighbour_z is not None else [])
  rows = lambda tree, i: jax.tree.map(lambda a: a[i * batch_size:(i + 1) * batch_size], tree)

  def disc_loss_fn(params):
    # One forward over [real; fake (; neighbours)]: D has no batch-dependent
    # layers. (fake_z carries no gradient here: only D/Q's parameters are
    # differentiated.)
    out = state.disc.apply_fn({'params': params}, jnp.concatenate(parts, axis=0))
    real_out, fake_out = rows(out, 0), rows(out, 1)
    d_loss = gan.discriminator_loss(real_out['logit'], fake_out['logit'], real_targets,
                                       fake_targets)
    mi_cat, mi_cont, mi = mi_losses(fake_out)
    metrics = {'d_loss': d_loss, 'mi_cat_loss': mi_cat, 'mi_cont_loss': mi_cont,
               'd_real_prob': jnp.mean(jax.nn.sigmoid(real_out['logit'])),
               'd_fake_prob': jnp.mean(jax.nn.sigmoid(fake_out['logit']))}
    total = d_loss + mi
    if gan_weight != 1:
      total = gan_weight * total
    # Added in this order (the ops of every earlier version: results stay bitwise).
    return _add_real_latent_terms(total, metrics, real_out,
                                  rows(out, 2) if neighbour_z is not None else None, lc,
                                  teacher, teacher_weight)

  (_, disc_metrics), disc_grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(state.disc.params)
  new_disc = state.disc.apply_gradients(grads=disc_grads)

  # G (D/Q fixed at their new values): the loss's gradient with respect to the
  # fake latents, pulled back through G's saved VJP.
  def gen_loss_fn(fake):
    out = new_disc.apply_fn({'params': new_disc.params}, fake)
    g_loss = gan.generator_loss(out['logit'])
    _, _, mi = mi_losses(out)
    return g_loss + mi, {'g_loss': g_loss}

  (_, gen_metrics), fake_grads = jax.value_and_grad(gen_loss_fn, has_aux=True)(fake_z)
  (gen_grads,) = gen_vjp(fake_grads)
  new_gen = state.gen.apply_gradients(grads=gen_grads)
  return new_gen, new_disc, {**disc_metrics, **gen_metrics}


def _add_real_latent_terms(total, metrics, real_out, neighbour_out,
                           lc: ml_collections.ConfigDict, teacher: jax.Array | None,
                           teacher_weight: jax.Array | float):
  """`total` + Q's terms on real latents (two-stage): neighbour consistency and
  marginal entropy, teacher cross-entropy; and `metrics` with theirs."""
  metrics = dict(metrics)
  if neighbour_out is not None:
    consistency = clustering.neighbour_consistency_loss(real_out['cat_logits'],
                                                        neighbour_out['cat_logits'])
    entropy = clustering.marginal_entropy(real_out['cat_logits'])
    total += lc.neighbour_weight * (consistency - lc.neighbour_entropy_weight * entropy)
    metrics.update(neighbour_consistency=consistency, real_marginal_entropy=entropy)
  if teacher is not None:
    teacher_ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        real_out['cat_logits'][0], teacher))
    total += teacher_weight * teacher_ce
    metrics['teacher_ce'] = teacher_ce
  return total, metrics


def _real_latent_update(state: state_lib.LatentGANState, real_z: jax.Array,
                        lc: ml_collections.ConfigDict, neighbour_z: jax.Array | None,
                        teacher: jax.Array | None, teacher_weight: jax.Array | float):
  """`loss.gan_weight = 0`: D/Q's update from the real-latent terms alone; G is not run."""
  batch_size = real_z.shape[0]
  parts = [real_z] + ([neighbour_z] if neighbour_z is not None else [])

  def loss_fn(params):
    out = state.disc.apply_fn({'params': params}, jnp.concatenate(parts, axis=0))
    rows = lambda i: jax.tree.map(lambda a: a[i * batch_size:(i + 1) * batch_size], out)
    return _add_real_latent_terms(0.0, {}, rows(0),
                                  rows(1) if neighbour_z is not None else None, lc, teacher,
                                  teacher_weight)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.disc.params)
  return state.gen, state.disc.apply_gradients(grads=grads), metrics


def train_step(state: state_lib.LatentGANState, batch: dict[str, jax.Array], *,
               config: ml_collections.ConfigDict,
               layout: latent.CodeLayout) -> tuple[state_lib.LatentGANState, Metrics]:
  """One combined update of the autoencoder, D/Q and G on one global batch."""
  key = jax.random.fold_in(state.rng, state.step)
  new_ae, z, ae_metrics = _autoencoder_update(state, batch['image'], config.loss)
  new_gen, new_disc, gan_metrics = _gan_update(state, jax.lax.stop_gradient(z), key,
                                               config.loss, layout)
  new_state = state.replace(step=state.step + 1, ae=new_ae, gen=new_gen, disc=new_disc)
  return new_state, {**ae_metrics, **gan_metrics}


def autoencoder_step(state: state_lib.LatentGANState, batch: dict[str, jax.Array], *,
                     config: ml_collections.ConfigDict) -> tuple[state_lib.LatentGANState, Metrics]:
  """Two-stage schedule, stage 1: the autoencoder alone (G and D/Q untouched)."""
  new_ae, _, metrics = _autoencoder_update(state, batch['image'], config.loss)
  return state.replace(step=state.step + 1, ae=new_ae), metrics


def latent_batch_indices(rng: jax.Array, gan_step: jax.Array, num_latents: int,
                         batch_size: int) -> jax.Array:
  """Rows of the latent cache that latent-GAN step `gan_step` trains on.

  Epoch e (of num_latents // batch_size steps, remainder dropped) visits the
  cache in the order permutation(fold_in(rng', e)), so a batch is a pure
  function of (rng, step): resumable at any step, identical on any device count.
  """
  steps_per_epoch = num_latents // batch_size
  epoch, position = gan_step // steps_per_epoch, gan_step % steps_per_epoch
  order = jax.random.permutation(
      jax.random.fold_in(jax.random.fold_in(rng, _LATENT_ORDER_SALT), epoch), num_latents)
  return jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)


# Separates the latent cache's visiting order from the step's other draws.
_LATENT_ORDER_SALT = 0x0D3A


def latent_gan_step(state: state_lib.LatentGANState, cache: dict[str, jax.Array], *,
                    config: ml_collections.ConfigDict, layout: latent.CodeLayout,
                    mesh: jax.sharding.Mesh | None = None
                    ) -> tuple[state_lib.LatentGANState, Metrics]:
  """Two-stage schedule, stage 2: one D/Q + G update on a batch of cached latents.

  Args:
    state: the train state; its autoencoder is frozen (left as it is).
    cache: {'z': [N, latent] Enc(x) of the train split, 'neighbours': [N, k]
      row indices of each latent's nearest neighbours (, 'teacher': [N] cluster
      indices)} (see `lgae.methods.latentgan_ae.latent_cache`).
  """
  lc = config.loss
  key = jax.random.fold_in(state.rng, state.step)
  k_gan, k_neighbour = jax.random.split(key)
  gan_step = state.step - config.two_stage.autoencoder_steps
  num_latents = cache['z'].shape[0]
  index = latent_batch_indices(state.rng, gan_step, num_latents, config.batch_size)
  if mesh is not None:  # the gathered batch is split over the devices like an image batch.
    index = jax.lax.with_sharding_constraint(index, parallel.batch_sharded(mesh))
  real_z = cache['z'][index]
  neighbour_z = None
  if lc.neighbour_weight > 0:
    neighbours = cache['neighbours'][index]
    pick = jax.random.randint(k_neighbour, (index.shape[0], 1), 0, neighbours.shape[1])
    neighbour_z = cache['z'][jnp.take_along_axis(neighbours, pick, axis=1)[:, 0]]
  teacher, teacher_weight = None, 0.0
  if lc.get('teacher_weight', 0.0) > 0:
    teacher = cache['teacher'][index]
    teacher_weight = lc.teacher_weight
    if lc.get('teacher_gan_steps', 0) > 0:   # a warm start: on for the first steps only.
      teacher_weight = jnp.where(gan_step < lc.teacher_gan_steps, teacher_weight, 0.0)
  new_gen, new_disc, metrics = _gan_update(state, real_z, k_gan, lc, layout, neighbour_z,
                                           teacher, teacher_weight)
  return state.replace(step=state.step + 1, gen=new_gen, disc=new_disc), metrics
