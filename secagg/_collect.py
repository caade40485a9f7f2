"""The ``collect`` backend: the plain backend that also keeps each client's vector.

For strategies that need individual updates (median, Krum, trimmed mean) and for a
*trusted* server that clips each update itself (central DP). The server sees every
update in the clear; :class:`~secagg.SecureAggregation` refuses every strategy that
asks for this backend.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import cast

import numpy as np

from secagg._backend import AggregateResult
from secagg._plain import PlainBackend, PlainClient, PlainServer, PlainUpdate

__all__ = ["CollectingBackend", "IndividualAggregate"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class IndividualAggregate(AggregateResult):
    """An :class:`~secagg.AggregateResult` that also holds each contributor's vector
    (``updates``) and weight (``weights``), keyed by client id."""

    updates: Mapping[int, np.ndarray] = dataclasses.field(default_factory=dict)
    weights: Mapping[int, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.updates) != set(self.contributors) or set(self.weights) != set(
            self.contributors
        ):
            raise ValueError("updates and weights must be keyed by exactly the contributors")
        object.__setattr__(self, "updates", types.MappingProxyType(dict(self.updates)))
        object.__setattr__(self, "weights", types.MappingProxyType(dict(self.weights)))


class CollectingServer(PlainServer):
    """A :class:`PlainServer` that remembers each accepted vector."""

    def __init__(self, *, round_id: int, client_ids: tuple[int, ...], dim: int) -> None:
        super().__init__(round_id=round_id, client_ids=client_ids, dim=dim)
        self._updates: dict[int, np.ndarray] = {}
        self._weights: dict[int, float] = {}

    def receive(self, client_id: int, message: object) -> None:
        super().receive(client_id, message)
        message = cast(PlainUpdate, message)  # PlainServer.receive checked it
        self._updates[client_id] = np.asarray(message.vector, dtype=np.float64).copy()
        self._weights[client_id] = float(message.weight)

    def result(self) -> IndividualAggregate:
        base = super().result()
        return IndividualAggregate(
            weighted_sum=base.weighted_sum,
            total_weight=base.total_weight,
            contributors=base.contributors,
            dropped=base.dropped,
            updates=self._updates,
            weights=self._weights,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CollectingBackend:
    """Sum in the clear and keep every individual vector (no privacy at all)."""

    name: str = "collect"

    def server_session(
        self, *, round_id: int, client_ids: tuple[int, ...], dim: int, rng: np.random.Generator
    ) -> CollectingServer:
        return CollectingServer(round_id=round_id, client_ids=client_ids, dim=dim)

    def client_session(
        self, *, client_id: int, vector: np.ndarray, weight: float, rng: np.random.Generator
    ) -> PlainClient:
        return PlainBackend().client_session(
            client_id=client_id, vector=vector, weight=weight, rng=rng
        )
