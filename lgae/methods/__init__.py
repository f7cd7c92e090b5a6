"""The methods lgae trains and scores; `config.model_name` picks one.

  latentgan_ae  the LatentGAN Autoencoder (Kalwar et al.): the paper's system.
  infogan       InfoGAN (Chen et al. 2016), image space: the paper's Table 1 comparator.
  aae           the unsupervised-clustering adversarial autoencoder (Makhzani et al. 2016).
  beta_vae      β-VAE (Higgins et al. 2017): a dSprites disentanglement baseline.
  wae_mmd       the Wasserstein autoencoder with an MMD penalty (Tolstikhin et al. 2018).
  cg_aae        the AAE with a learned prior, a code generator CG(z, s) (Wang et al. 2020).
  infovaegan    InfoVAEGAN (Ye & Bors 2021): GAN + inference network, joint Cat/continuous latent.
  latent_stats_vae
                a VAE or MMD-VAE whose per-class latent statistics generate (Vargas Aguilar et al.).

The table is lazy: a method's module is imported when its name is first asked
for, so naming one method never loads the others. Adding a method: a module
(or package) here whose `METHOD` is a `lgae.core.method.Method`, a line in
`_MODULES`, and a config in `configs/`. No method imports another: shared
pieces live in `lgae.nets` and `lgae.objectives`.
"""

import importlib

from lgae.core import method as method_lib

# config.model_name -> the module that defines it (its `METHOD`).
_MODULES = {
    'latentgan_ae': 'lgae.methods.latentgan_ae',
    'infogan': 'lgae.methods.infogan',
    'aae': 'lgae.methods.aae',
    'beta_vae': 'lgae.methods.beta_vae',
    'wae_mmd': 'lgae.methods.wae',
    'infovaegan': 'lgae.methods.infovaegan',
    'latent_stats_vae': 'lgae.methods.latent_stats_vae',
    'cg_aae': 'lgae.methods.cg_aae',
}

NAMES = tuple(_MODULES)


def get(name: str) -> method_lib.Method:
  """The method called `name` (a `config.model_name`), importing its module on first use."""
  if name not in _MODULES:
    raise ValueError(f'{name!r} is not a method; lgae has the methods {NAMES}.')
  method = importlib.import_module(_MODULES[name]).METHOD
  assert method.name == name, (method, name)
  return method


method_lib.install_loader(get)
for_config = method_lib.for_config
for_state = method_lib.for_state
