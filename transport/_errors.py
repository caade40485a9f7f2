"""The one exception tree of :mod:`transport`.

``TransportError`` is the root. ``Rejected`` is what the coordinator answers a client
that broke a rule: it carries a status code (the names of ``grpc.StatusCode``, kept as
strings so that the in-process transport needs no gRPC) and a message naming the
problem and the client. ``ConnectionLost`` is what a client runtime sees when its link
ends; it carries the status the coordinator sent, if any.
"""

from __future__ import annotations

import enum

__all__ = ["Code", "TransportError", "Rejected", "ConnectionLost", "ConfigError", "RoundsFailed"]


class Code(enum.Enum):
    """Status codes used by the coordinator (a subset of gRPC's, same names)."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL"
    UNKNOWN = "UNKNOWN"


class TransportError(Exception):
    """Root of every error raised by :mod:`transport`."""


class ConfigError(TransportError, ValueError):
    """A coordinator or client setting can never work; the message names it."""


class RoundsFailed(TransportError, RuntimeError):
    """The coordinator gave up: too many rounds in a row failed."""


class Rejected(TransportError):
    """A client broke a rule; ``code`` and ``message`` become its stream's status."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(TransportError):
    """The link to the coordinator ended; ``code`` is the status it ended with."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    @property
    def permanent(self) -> bool:
        """True when reconnecting cannot help (bad credentials, an id the coordinator's
        token table does not know, wrong configuration)."""
        return self.code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.NOT_FOUND)
