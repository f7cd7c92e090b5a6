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
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from lgae import latent, losses, parallel
from lgae import state as state_lib

Metrics = dict[str, jax.Array]


def train_step(state: state_lib.LatentGANState, batch: dict[str, jax.Array], *,
               config: ml_collections.ConfigDict,
               layout: latent.CodeLayout) -> tuple[state_lib.LatentGANState, Metrics]:
  """One combined update of the autoencoder, D/Q and G on one global batch."""
  images = batch['image']
  batch_size = images.shape[0]
  lc = config.loss
  key = jax.random.fold_in(state.rng, state.step)
  k_codes, k_real, k_fake = jax.random.split(key, 3)
  codes = latent.sample(k_codes, layout, batch_size)
  g_input = latent.generator_input(codes, layout)

  # 1. Autoencoder.
  def ae_loss_fn(params):
    (z, recon), updates = state.ae.apply_fn(
        {'params': params, 'batch_stats': state.ae.batch_stats}, images, train=True,
        mutable=['batch_stats'])
    recon_loss = losses.reconstruction_loss(images, recon)
    total = recon_loss
    aux = {'recon_loss': recon_loss}
    if lc.encoder_adversarial_weight > 0 or lc.encoder_entropy_weight > 0:
      # Options that let the latent GAN shape the encoder (D/Q held fixed here).
      out = state.disc.apply_fn({'params': state.disc.params}, z)
      if lc.encoder_adversarial_weight > 0:
        # AAE-style: pull Enc(x) towards G's code-structured distribution by
        # trying to make D call it fake.
        enc_adv = losses.encoder_adversarial_loss(out['logit'])
        total += lc.encoder_adversarial_weight * enc_adv
        aux['encoder_adv_loss'] = enc_adv
      if lc.encoder_entropy_weight > 0:
        # Make Q's categorical prediction on real latents confident.
        entropy = losses.categorical_entropy(out['cat_logits'])
        total += lc.encoder_entropy_weight * entropy
        aux['encoder_q_entropy'] = entropy
    return total, (z, updates['batch_stats'], aux)

  (_, (z, batch_stats, ae_metrics)), ae_grads = jax.value_and_grad(
      ae_loss_fn, has_aux=True)(state.ae.params)
  new_ae = state.ae.apply_gradients(grads=ae_grads, batch_stats=batch_stats)
  real_z = jax.lax.stop_gradient(z)

  # 2. Discriminator and Q heads. G's forward is run once, here: its output is
  # D's fake batch, and its VJP is reused for G's own update in step 3 (G's
  # parameters have not changed in between), so G is not recomputed.
  fake_z, gen_vjp = jax.vjp(
      lambda params: state.gen.apply_fn({'params': params}, g_input), state.gen.params)
  real_targets = losses.noisy_labels(k_real, (batch_size,), lc.real_label, lc.fake_label,
                                     lc.label_flip_prob)
  fake_targets = losses.noisy_labels(k_fake, (batch_size,), lc.fake_label, lc.real_label,
                                     lc.label_flip_prob)

  def mi_losses(out):
    mi_cat = losses.categorical_mi_loss(out['cat_logits'], codes.categorical)
    mi_cont = losses.continuous_mi_loss(out['cont_mean'], codes.continuous)
    return mi_cat, mi_cont, lc.lambda_disc * mi_cat + lc.lambda_cont * mi_cont

  def disc_loss_fn(params):
    # One forward over [real; fake]: D has no batch-dependent layers.
    out = state.disc.apply_fn({'params': params}, jnp.concatenate([real_z, fake_z], axis=0))
    # (fake_z carries no gradient here: only D/Q's parameters are differentiated.)
    real_logits, fake_logits = out['logit'][:batch_size], out['logit'][batch_size:]
    fake_out = {'cat_logits': tuple(l[batch_size:] for l in out['cat_logits']),
                'cont_mean': out['cont_mean'][batch_size:]}
    d_loss = losses.discriminator_loss(real_logits, fake_logits, real_targets, fake_targets)
    mi_cat, mi_cont, mi = mi_losses(fake_out)
    metrics = {'d_loss': d_loss, 'mi_cat_loss': mi_cat, 'mi_cont_loss': mi_cont,
               'd_real_prob': jnp.mean(jax.nn.sigmoid(real_logits)),
               'd_fake_prob': jnp.mean(jax.nn.sigmoid(fake_logits))}
    return d_loss + mi, metrics

  (_, disc_metrics), disc_grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(state.disc.params)
  new_disc = state.disc.apply_gradients(grads=disc_grads)

  # 3. Generator (D/Q fixed at their new values): the loss's gradient with
  # respect to the fake latents, pulled back through G's saved VJP.
  def gen_loss_fn(fake):
    out = new_disc.apply_fn({'params': new_disc.params}, fake)
    g_loss = losses.generator_loss(out['logit'])
    _, _, mi = mi_losses(out)
    return g_loss + mi, {'g_loss': g_loss}

  (_, gen_metrics), fake_grads = jax.value_and_grad(gen_loss_fn, has_aux=True)(fake_z)
  (gen_grads,) = gen_vjp(fake_grads)
  new_gen = state.gen.apply_gradients(grads=gen_grads)

  new_state = state.replace(step=state.step + 1, ae=new_ae, gen=new_gen, disc=new_disc)
  return new_state, {**ae_metrics, **disc_metrics, **gen_metrics}


def make_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """Jits `train_step` for `mesh`: state replicated (and donated), batch split."""
  layout = latent.CodeLayout.from_config(config)
  step = functools.partial(train_step, config=config, layout=layout)
  replicated = parallel.replicated(mesh)
  return jax.jit(step, in_shardings=(replicated, parallel.batch_sharded(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
