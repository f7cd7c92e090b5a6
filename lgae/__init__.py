"""lgae: the LatentGAN Autoencoder (Kalwar et al.) and its baselines in JAX/Flax."""

from lgae.core import host_memory as _host_memory

# Before any JAX computation starts XLA:CPU's threads: makes glibc keep the
# step's freed buffers mapped instead of page-faulting them back every step
# (see lgae/core/host_memory.py; LGAE_TUNE_MALLOC=0 opts out).
_host_memory.keep_freed_memory()

# Installs the table of methods (`lgae.methods`), lazy: no method is imported yet.
from lgae import methods as _methods  # noqa: E402,F401  pylint: disable=wrong-import-position
