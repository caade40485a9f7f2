"""Aggregation backends by the name the CLI and the ``Welcome`` frame use."""

from __future__ import annotations

from typing import Any

import secagg
from secagg import Backend
from transport._errors import ConfigError

__all__ = ["BACKEND_NAMES", "resolve_backend"]

# name -> attribute of :mod:`secagg` (or, for distributed DP, :mod:`dp`) holding the class
_CLASSES = {"plain": "PlainBackend", "secagg+": "SecAggPlusBackend", "ckks": "CKKSBackend",
            "secagg+ddp": "DistributedDPBackend"}
BACKEND_NAMES = tuple(_CLASSES)


def _module(name: str) -> Any:
    if name == "secagg+ddp":
        import dp

        return dp
    return secagg


def available_backends() -> tuple[str, ...]:
    """The names whose backend this installation provides."""
    return tuple(name for name, attr in _CLASSES.items() if hasattr(_module(name), attr))


def resolve_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name``, configured with ``options``.

    On a client, options do not matter: every round's parameters come from the
    coordinator's session (for ``secagg+``, the round config in the first request),
    except for ``secagg+ddp``, whose client decides the noise it adds (``noise_multiplier``,
    ``clip``, optionally ``mechanism``, ``bits``, ``expected_dropout``) and refuses a
    coordinator whose strategy encodes otherwise.

    Raises:
        ConfigError: unknown name, a backend this installation does not provide, or
            options the backend refuses.
    """
    if name == "ckks" and "keys" not in options:
        raise ConfigError("backend 'ckks' needs keys (blindsum: --ckks-keys FILE holding "
                          "secagg.encode(keys) or secagg.encode(keys.public()))")
    if name == "secagg+ddp" and not {"noise_multiplier", "clip"} <= set(options):
        raise ConfigError("backend 'secagg+ddp' needs the noise a client adds (blindsum: "
                          "--ddp-noise-multiplier Z --ddp-clip C, as the coordinator's strategy)")
    try:
        attr = _CLASSES[name]
    except KeyError:
        raise ConfigError(f"backend must be one of {list(_CLASSES)}, got {name!r}") from None
    cls = getattr(_module(name), attr, None)
    if cls is None:
        raise ConfigError(f"backend {name!r} is not available in this installation")
    try:
        backend: Backend = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"backend {name!r}: {exc}") from None
    return backend
