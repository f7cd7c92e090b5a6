"""Dump Enc(x) of train and test for a workdir to an npz (research scratch)."""
import sys
import numpy as np
from lgae.evaluation import run as evaluation
from lgae.methods.latentgan_ae import latent_cache
state, config, mesh = evaluation.load_checkpoint(sys.argv[1])
ztr, ytr = latent_cache.encode_split(state, config, mesh, 'train')
zte, yte = latent_cache.encode_split(state, config, mesh, 'test')
np.savez(sys.argv[2], ztr=ztr, ytr=ytr, zte=zte, yte=yte)
print(ztr.shape, zte.shape)
