"""tfds datasets that tfds cannot download on an offline machine.

Importing this package registers the `rendered_chairs` builder with tfds, so
`tfds.builder('rendered_chairs')` / `tfds.load('rendered_chairs')` work, and
`dsprites_procedural` (dSprites rendered from its factor grid, no download).
`mnist_local` registers nothing: it writes tfds' own `mnist`, `fashion_mnist`
or `kmnist` from local IDX files.
"""

# Imported for their side effect: registering the builders with tfds.
from lgae.data import dsprites_procedural  # noqa: F401
from lgae.data import mnist_local  # noqa: F401
from lgae.data import rendered_chairs  # noqa: F401
