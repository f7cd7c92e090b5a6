"""A tiny on-disk MNIST for tests that need real files (subprocesses, Orbax).

`tfds.testing.mock_data` only works in-process, and it swaps the file system
while a dataset is being built, which races with Orbax's background
checkpoint writes; tests of the training loop and the CLIs use this instead.
"""

import gzip
import os
import struct

import numpy as np

from lgae.data import mnist_local


def idx_bytes(array: np.ndarray) -> bytes:
  """The IDX encoding (big-endian header, uint8 payload) of `array`."""
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_source(source_dir: str, num_train: int, num_test: int, seed: int = 0) -> None:
  """Writes the four MNIST .gz files with random digits (and random labels)."""
  os.makedirs(source_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  for prefix, n in (('train', num_train), ('t10k', num_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for kind, array in (('images-idx3', images), ('labels-idx1', labels)):
      with gzip.open(os.path.join(source_dir, f'{prefix}-{kind}-ubyte.gz'), 'wb') as f:
        f.write(idx_bytes(array))


def prepare(root: str, num_train: int = 64, num_test: int = 32) -> str:
  """Prepares a fake tfds `mnist` under `root/tfds`; returns that data dir."""
  data_dir = os.path.join(root, 'tfds')
  write_source(os.path.join(root, 'source'), num_train, num_test)
  mnist_local.prepare(os.path.join(root, 'source'), data_dir, expected_sha256=None)
  return data_dir
