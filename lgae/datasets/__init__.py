"""tfds datasets that tfds cannot download on an offline machine.

Importing this package registers the `rendered_chairs` builder with tfds, so
`tfds.builder('rendered_chairs')` / `tfds.load('rendered_chairs')` work.
`mnist_local` registers nothing: it writes tfds' own `mnist` from local files.
"""

from lgae.datasets import (
    mnist_local,  # noqa: F401
    rendered_chairs,  # noqa: F401  (registers the builder)
)
