"""The LatentGAN Autoencoder (Kalwar et al.): the paper's system, in one package.

Its modules, in the paper's order (README.md beside this file maps the
paper's equations and tables to functions):

  config.py        the config fields: Table 2's networks, the schedule, extra loss terms
  networks.py      Enc/Dec (the shared conv stacks), G and D/Q (Table 2)
  state.py         the train state: autoencoder, G, D/Q, step and key
  step.py          the combined update (Eqs. 1-3) and the two stages' steps
  schedule.py      'joint' and 'two_stage' as phases of the core's loop
  latent_cache.py  stage 2's input: Enc(x) of the train split and its k-NN graph
  latent_teacher.py  a label-free clustering of the cached latents (UMAP + GMM)
  method.py        the `Method` the core runs
"""

from lgae.methods.latentgan_ae.method import LatentGANAE

METHOD = LatentGANAE()

__all__ = ['METHOD', 'LatentGANAE']
