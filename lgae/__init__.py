"""LatentGAN autoencoder (LGAE) in JAX/Flax."""
