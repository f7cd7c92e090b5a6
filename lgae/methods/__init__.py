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
import sys
from typing import Any

from lgae.core import registry

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


def get(name: str) -> Any:
  """The method (a `lgae.core.method.Method`) called `name`, importing its module on first use."""
  if name not in _MODULES:
    raise ValueError(f'{name!r} is not a method; lgae has the methods {NAMES}.')
  method = importlib.import_module(_MODULES[name]).METHOD
  assert method.name == name, (method, name)
  return method


def for_config(config) -> Any:
  """The method of `config.model_name`."""
  return get(config.model_name)


def for_state(state) -> Any:
  """The method whose train state `state` is (its module is imported, since the state exists)."""
  for module in _MODULES.values():
    if module in sys.modules and isinstance(state, sys.modules[module].METHOD.state_type):
      return sys.modules[module].METHOD
  raise TypeError(f'{type(state).__name__} is not the train state of any lgae method.')


registry.install_loader(get, for_state)
