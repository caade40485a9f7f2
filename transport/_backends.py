"""Aggregation backends by the name the CLI and the ``Welcome`` frame use."""

from __future__ import annotations

import secagg
from secagg import Backend
from transport._errors import ConfigError

__all__ = ["BACKEND_NAMES", "resolve_backend"]

# name -> attribute of :mod:`secagg` holding the backend class
_CLASSES = {"plain": "PlainBackend", "secagg+": "SecAggPlusBackend", "ckks": "CKKSBackend"}
BACKEND_NAMES = tuple(_CLASSES)


def available_backends() -> tuple[str, ...]:
    """The names whose backend this installation provides."""
    return tuple(name for name, attr in _CLASSES.items() if hasattr(secagg, attr))


def resolve_backend(name: str) -> Backend:
    """A default-configured backend for ``name``.

    Raises:
        ConfigError: unknown name, or a backend this installation does not provide.
    """
    try:
        attr = _CLASSES[name]
    except KeyError:
        raise ConfigError(f"backend must be one of {list(_CLASSES)}, got {name!r}") from None
    cls = getattr(secagg, attr, None)
    if cls is None:
        raise ConfigError(f"backend {name!r} is not available in this installation")
    backend: Backend = cls()
    return backend
