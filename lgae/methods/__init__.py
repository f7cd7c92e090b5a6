"""The methods lgae trains and scores, one module each; `config.model_name` picks one.

  latentgan_ae  the LatentGAN Autoencoder (Kalwar et al.): the paper's system.
  infogan       InfoGAN (Chen et al. 2016), image space: the paper's Table 1 comparator.
  aae           the unsupervised-clustering adversarial autoencoder (Makhzani et al. 2016).
  beta_vae      β-VAE (Higgins et al. 2017): a dSprites disentanglement baseline.
  wae_mmd       the Wasserstein autoencoder with an MMD penalty (Tolstikhin et al. 2018).
  cg_aae        the AAE with a learned prior, a code generator CG(z, s) (Wang et al. 2020).
  infovaegan    InfoVAEGAN (Ye & Bors 2021): GAN + inference network, joint Cat/continuous latent.
  latent_stats_vae
                a VAE or MMD-VAE whose per-class latent statistics generate (Vargas Aguilar et al.).

Adding a method: a module here with a `base.Method` subclass, registered in
`_METHODS` below, and a config in `configs/` (see `base` for the contract).
"""

from lgae.methods import (aae, base, beta_vae, cg_aae, infogan, infovaegan, latent_stats_vae,
                          latentgan_ae, wae)

_METHODS: dict[str, base.Method] = {
    m.name: m for m in (latentgan_ae.LatentGANAE(), infogan.InfoGAN(), aae.AAE(),
                        beta_vae.BetaVAE(), wae.WAE(), infovaegan.InfoVAEGAN(),
                        latent_stats_vae.LatentStatsVAE(), cg_aae.CGAAE())}

NAMES = tuple(_METHODS)


def get(name: str) -> base.Method:
  """The method called `name` (a `config.model_name`)."""
  try:
    return _METHODS[name]
  except KeyError:
    raise ValueError(f'Unknown method {name!r}; lgae has {NAMES}.') from None


def for_config(config) -> base.Method:
  """The method of `config.model_name`."""
  return get(config.model_name)


def for_state(state) -> base.Method:
  """The method whose train state `state` is (dispatch by the state's class)."""
  for method in _METHODS.values():
    if isinstance(state, method.state_type):
      return method
  raise TypeError(f'{type(state).__name__} is not the train state of any lgae method.')
