"""The coordinator's backend choice under the strategy contract (``docs/strategies.md``).

A :class:`secagg.BackendStrategy` chooses each aggregation's backend
(:func:`secagg.backend_for`). Clients learn the backend only by name, from the
``Welcome`` frame, and then follow the server session's round configuration, so
every backend the strategy chooses must carry the coordinator's backend name.
"""

from __future__ import annotations

import secagg
from secagg import Backend, BackendStrategy, EvaluatingStrategy, Strategy, backend_for
from transport._errors import ConfigError
from transport._round import RoundFailed

__all__ = ["check_backend_name", "choose_backend"]


def check_backend_name(strategy: Strategy, backend: Backend, *, server_round: int,
                       clients_per_round: int) -> None:
    """At start: the strategy's fit (and evaluate) backends must be named like ``backend``.

    Raises:
        ConfigError: naming both backends, or why the strategy has none for
            ``clients_per_round`` clients.
    """
    if not isinstance(strategy, BackendStrategy):
        return
    purposes = ("fit", "evaluate") if isinstance(strategy, EvaluatingStrategy) else ("fit",)
    who = type(strategy).__name__
    for purpose in purposes:
        try:
            chosen = strategy.backend(server_round=server_round, num_clients=clients_per_round,
                                      purpose=purpose)
        except (secagg.SecAggError, ValueError) as exc:
            raise ConfigError(f"strategy {who} has no {purpose} backend for "
                              f"{clients_per_round} clients per round: {exc}") from None
        if chosen is not None and chosen.name != backend.name:
            raise ConfigError(
                f"strategy {who} aggregates with backend {chosen.name!r} ({purpose}), but the "
                f"coordinator's backend is {backend.name!r}; clients follow the coordinator's, "
                f"so configure it with {chosen.name!r}")


def choose_backend(strategy: Strategy, default: Backend, server_round: int, n: int,
                   purpose: str) -> Backend:
    """The backend of one aggregation over ``n`` clients.

    Raises:
        RoundFailed: the strategy has no backend for ``n`` clients, or chose one whose
            name differs from the coordinator's (clients would not follow it).
    """
    who = type(strategy).__name__
    try:
        backend = backend_for(strategy, default, server_round, n, purpose)
    except (secagg.SecAggError, ValueError) as exc:
        raise RoundFailed(f"strategy {who} has no {purpose} backend for {n} clients: "
                          f"{exc}") from exc
    if backend.name != default.name:
        raise RoundFailed(f"strategy {who} chose backend {backend.name!r} for {purpose}, "
                          f"but clients were told {default.name!r}")
    return backend
