"""tfds datasets that tfds cannot download on an offline machine.

Importing this package registers the `rendered_chairs` builder with tfds, so
`tfds.builder('rendered_chairs')` / `tfds.load('rendered_chairs')` work, and
`dsprites_procedural` (dSprites rendered from its factor grid, no download).
`mnist_local` registers nothing: it writes tfds' own `mnist`, `fashion_mnist`
or `kmnist` from local IDX files.
"""

from lgae.datasets import (
    dsprites_procedural,  # noqa: F401  (registers the builder)
    mnist_local,  # noqa: F401
    rendered_chairs,  # noqa: F401  (registers the builder)
)
