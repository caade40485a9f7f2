"""The ``plain`` backend: clients send their vectors in the clear and the server adds.

No privacy at all; it is the baseline the other backends are measured against and
what a strategy uses when no privacy wrapper is configured.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from secagg import _wire
from secagg._backend import AggregateResult, check_vector
from secagg._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["PlainBackend", "PlainRequest", "PlainUpdate"]

_BLOCK = 1 << 16  # coordinates per step of a weighted addition (fits in cache)


@_wire.register(1)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlainRequest:
    round_id: int
    dim: int


@_wire.register(2)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlainUpdate:
    round_id: int
    vector: np.ndarray
    weight: float


class PlainServer:
    """Collects one :class:`PlainUpdate` per client and adds them."""

    def __init__(self, *, round_id: int, client_ids: tuple[int, ...], dim: int) -> None:
        self._round_id = round_id
        self._dim = dim
        self._pending = set(client_ids)
        self._outbox = {cid: PlainRequest(round_id=round_id, dim=dim) for cid in client_ids}
        self._sum = np.zeros(dim)
        self._weight = 0.0
        self._contributors: list[int] = []
        self._dropped: list[int] = []
        self._closed = False

    @property
    def stage(self) -> str:
        return "done" if self.done else "collect"

    @property
    def done(self) -> bool:
        return self._closed or not self._pending

    def next_messages(self) -> dict[int, object]:
        out, self._outbox = self._outbox, {}
        return dict(out)

    def receive(self, client_id: int, message: object) -> None:
        if self.done:
            raise LocalProtocolError("the round is over")
        if client_id not in self._pending:
            raise RemoteProtocolError(client_id, "not expected (unknown, dropped or duplicate)")
        if not isinstance(message, PlainUpdate) or message.round_id != self._round_id:
            raise RemoteProtocolError(client_id, f"expected PlainUpdate for round {self._round_id}")
        try:
            vec = check_vector(message.vector, name="update", dim=self._dim)
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(client_id, str(exc)) from None
        if not (np.isfinite(message.weight) and message.weight > 0):
            raise RemoteProtocolError(client_id, f"weight must be positive, got {message.weight}")
        self._pending.discard(client_id)
        if message.weight == 1.0:
            self._sum += vec
        else:  # weight * vec without a temporary the size of the vector
            for start in range(0, self._dim, _BLOCK):
                self._sum[start:start + _BLOCK] += message.weight * vec[start:start + _BLOCK]
        self._weight += message.weight
        self._contributors.append(client_id)

    def drop(self, client_id: int) -> None:
        if client_id in self._pending:
            self._pending.discard(client_id)
            self._dropped.append(client_id)

    def close_stage(self) -> None:
        for cid in sorted(self._pending):
            self.drop(cid)
        self._closed = True

    def result(self) -> AggregateResult:
        if not self.done:
            raise LocalProtocolError("result() before the round is done")
        return AggregateResult(
            weighted_sum=self._sum,
            total_weight=self._weight,
            contributors=tuple(sorted(self._contributors)),
            dropped=tuple(sorted(self._dropped)),
        )


class PlainClient:
    def __init__(self, *, vector: np.ndarray, weight: float) -> None:
        self._vector = check_vector(vector)
        self._weight = float(weight)
        self._sent = False

    def receive(self, message: object) -> object | None:
        if not isinstance(message, PlainRequest):
            raise RemoteProtocolError("server", f"unexpected {type(message).__name__}")
        if self._sent:
            raise RemoteProtocolError("server", "asked twice for the same update")
        if message.dim != self._vector.shape[0]:
            raise RemoteProtocolError(
                "server", f"asks for dimension {message.dim}, update has {self._vector.shape[0]}"
            )
        self._sent = True
        return PlainUpdate(round_id=message.round_id, vector=self._vector, weight=self._weight)


@dataclasses.dataclass(frozen=True, slots=True)
class PlainBackend:
    """Sum in the clear (no privacy)."""

    name: str = "plain"

    def server_session(
        self, *, round_id: int, client_ids: tuple[int, ...], dim: int, rng: np.random.Generator
    ) -> PlainServer:
        return PlainServer(round_id=round_id, client_ids=client_ids, dim=dim)

    def client_session(
        self, *, client_id: int, vector: np.ndarray, weight: float, rng: np.random.Generator
    ) -> PlainClient:
        if not weight > 0:
            raise ValueError(f"weight must be positive, got {weight}")
        return PlainClient(vector=vector, weight=weight)
