"""One interface for every way of summing client vectors: ``plain``, ``secagg+``, ``ckks``.

A backend makes sans-IO sessions. The coordinator (or :func:`secagg.simulate`) owns
the clock and the network; a session only turns messages into messages:

- server: ``next_messages()`` hands out what to send, ``receive(cid, msg)`` takes a
  reply, ``drop(cid)`` records a vanished client, ``close_stage()`` says the stage's
  deadline passed; when ``done``, ``result()`` is the weighted sum of the survivors.
- client: ``receive(msg)`` returns the reply (or ``None`` when there is none).

Vectors are flat ``float64`` arrays; weights are positive numbers (for example the
number of local examples). The result is ``sum(w_i * x_i)`` and ``sum(w_i)`` over
the clients whose input made it into the sum, so strategies never see one client.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["AggregateResult", "Backend", "ClientSession", "ServerSession", "check_vector"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AggregateResult:
    """What a round of aggregation produced.

    ``weighted_sum`` is ``sum(w_i * x_i)`` over ``contributors``, ``total_weight``
    is ``sum(w_i)``; ``dropped`` lists the sampled clients left out of the sum.
    """

    weighted_sum: np.ndarray
    total_weight: float
    contributors: tuple[int, ...]
    dropped: tuple[int, ...] = ()

    @property
    def mean(self) -> np.ndarray:
        """The weighted mean; raises ``ZeroDivisionError`` when nobody contributed."""
        if self.total_weight <= 0:
            raise ZeroDivisionError("no weight was aggregated (no client contributed)")
        return self.weighted_sum / self.total_weight


@runtime_checkable
class ServerSession(Protocol):
    """The server side of one aggregation round."""

    @property
    def stage(self) -> str: ...

    @property
    def done(self) -> bool: ...

    def next_messages(self) -> dict[int, object]: ...

    def receive(self, client_id: int, message: object) -> None: ...

    def drop(self, client_id: int) -> None: ...

    def close_stage(self) -> None: ...

    def result(self) -> AggregateResult: ...


@runtime_checkable
class ClientSession(Protocol):
    """The client side of one aggregation round."""

    def receive(self, message: object) -> object | None: ...


class Backend(Protocol):
    """Makes matched server and client sessions; ``name`` is what the CLI calls it."""

    @property
    def name(self) -> str: ...

    def server_session(
        self, *, round_id: int, client_ids: tuple[int, ...], dim: int, rng: np.random.Generator
    ) -> ServerSession: ...

    def client_session(
        self,
        *,
        client_id: int,
        vector: np.ndarray,
        weight: float,
        rng: np.random.Generator,
    ) -> ClientSession: ...


def check_vector(vector: object, *, name: str = "vector", dim: int | None = None) -> np.ndarray:
    """Validate a client's flat input; return it as ``float64``.

    Raises:
        TypeError: not a numeric NumPy array.
        ValueError: not one-dimensional, wrong length, or not finite.
    """
    if not isinstance(vector, np.ndarray) or vector.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric numpy array, got {type(vector).__name__}")
    if vector.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {vector.shape}")
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"{name} must have length {dim}, got {vector.shape[0]}")
    out = vector.astype(np.float64, copy=False)
    # A finite sum means every entry is finite (NaN and infinities propagate through
    # addition); only a non-finite sum, perhaps an overflow, needs the full check.
    with np.errstate(over="ignore", invalid="ignore"):
        total = out.sum()
    if not np.isfinite(total) and not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return out
