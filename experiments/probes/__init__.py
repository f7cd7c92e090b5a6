"""Research probes: small command lines that each measured a number the results cite.

  python -m experiments.probes.<name> --help

  dump_latents                  Enc(x) of a LatentGAN-AE checkpoint's train and test splits -> .npz
  umap_ceiling                  UMAP + GMM clustering error of dumped latents (the 3.48 % of H5)
  graph_ceiling                 spectral clustering of k-NN graphs of dumped latents (the 35.9 % of H5)
  neighbour_probe               the neighbour-consistency objective alone on a run's frozen latents
  generator_pixel_correlation   neighbour-pixel correlation of an image-space G's samples (dSprites P1-P13)

Each docstring names the results folder whose numbers it produced. They are
kept runnable (tests/probes_test.py runs each on tiny inputs) but are not part
of the library: they read checkpoints and files, and write at most one file.
"""
