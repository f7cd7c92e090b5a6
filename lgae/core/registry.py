"""Finding a method by its name without the core importing any method.

`lgae.methods` installs its lazy table here when `lgae` is imported
(`install_loader`); the core asks for a method by `config.model_name`
(`get`). Light on purpose: `import lgae` loads this module and nothing of JAX.
"""

from collections.abc import Callable
from typing import Any

_loader: Callable[[str], Any] | None = None
_by_state: Callable[[Any], Any] | None = None


def install_loader(loader: Callable[[str], Any], by_state: Callable[[Any], Any]) -> None:
  """Makes `get(name)` call `loader` and `for_state(state)` call `by_state` (`lgae.methods`)."""
  global _loader, _by_state
  _loader, _by_state = loader, by_state


def get(name: str) -> Any:
  """The method called `name` (a `lgae.core.method.Method`); ValueError if none is."""
  if _loader is None:
    raise RuntimeError('No method table installed: import lgae.methods first.')
  return _loader(name)


def for_state(state: Any) -> Any:
  """The method whose train state `state` is; TypeError if none."""
  if _by_state is None:
    raise RuntimeError('No method table installed: import lgae.methods first.')
  return _by_state(state)
