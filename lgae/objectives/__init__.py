"""Losses shared by the methods, as pure functions of arrays: GAN, mutual information,
clustering (SCAN), VAE terms, MMD, reconstruction."""
