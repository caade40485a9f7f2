"""Aggregation backends by the name the CLI and the ``Welcome`` frame use."""

from __future__ import annotations

from typing import Any

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


def resolve_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name``, configured with ``options``.

    On a client, options do not matter: every round's parameters come from the
    coordinator's session (for ``secagg+``, the round config in the first request).

    Raises:
        ConfigError: unknown name, a backend this installation does not provide, or
            options the backend refuses.
    """
    if name == "ckks" and "keys" not in options:
        raise ConfigError("backend 'ckks' needs keys (blindsum: --ckks-keys FILE holding "
                          "secagg.encode(keys) or secagg.encode(keys.public()))")
    try:
        attr = _CLASSES[name]
    except KeyError:
        raise ConfigError(f"backend must be one of {list(_CLASSES)}, got {name!r}") from None
    cls = getattr(secagg, attr, None)
    if cls is None:
        raise ConfigError(f"backend {name!r} is not available in this installation")
    try:
        backend: Backend = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"backend {name!r}: {exc}") from None
    return backend
