"""Finding a method by its name without the core importing any method.

`lgae.methods` installs its lazy table here when `lgae` is imported
(`install_loader`); the core asks for a method by `config.model_name`
(`get`). Light on purpose: `import lgae` loads this module and nothing of JAX.
"""

from collections.abc import Callable
from typing import Any

_loader: Callable[[str], Any] | None = None


def install_loader(loader: Callable[[str], Any]) -> None:
  """Makes `get(name)` call `loader` (the table of `lgae.methods`)."""
  global _loader
  _loader = loader


def get(name: str) -> Any:
  """The method called `name` (a `lgae.core.method.Method`); ValueError if none is."""
  if _loader is None:
    raise RuntimeError('No method table installed: import lgae.methods first.')
  return _loader(name)
