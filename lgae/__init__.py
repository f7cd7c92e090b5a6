"""LatentGAN autoencoder (LGAE) in JAX/Flax."""

from lgae import host_memory as _host_memory

# Before any JAX computation starts XLA:CPU's threads: makes glibc keep the
# step's freed buffers mapped instead of page-faulting them back every step
# (see lgae/host_memory.py; LGAE_TUNE_MALLOC=0 opts out).
_host_memory.keep_freed_memory()
