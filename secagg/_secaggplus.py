"""The ``secagg+`` backend: SecAgg+ sessions behind the common Backend interface."""

from __future__ import annotations

import dataclasses

import numpy as np

from secagg._client import SecAggPlusClient
from secagg._errors import ConfigurationError
from secagg._messages import RoundConfig
from secagg._quantize import Quantizer
from secagg._server import SecAggPlusServer

__all__ = ["SecAggPlusBackend"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecAggPlusBackend:
    """Secure aggregation by SecAgg+ masking (Bell et al. 2020, Bonawitz et al. 2017).

    Parameters:
        neighbours: degree ``k`` of the neighbour graph; ``"all"`` for the complete
            graph of the original SecAgg.
        threshold: shares ``t`` needed to recover a secret; by default a strict
            majority of the neighbours, ``k // 2 + 1``.
        clip: inputs are clipped to ``[-clip, clip]`` before quantisation.
        modulus_bits: the sum is computed modulo ``2^modulus_bits`` (16, 32 or 64-bit words).
        max_weight: largest integer weight a client may use (its example count, say).
        scale: quantisation levels per unit; by default the finest that cannot overflow.

    Notes:
        Privacy: the server sees only the sum of the survivors' inputs, provided fewer
        than ``t`` of any client's neighbours collude with it. Robustness: the round
        completes as long as every secret still has ``t`` shares among the clients that
        answer the last stage. Raising ``t`` buys privacy against collusion at the cost
        of robustness to dropouts; a larger ``k`` buys both at a cost per client linear
        in ``k``. Accuracy: each coordinate of each input is off by at most
        ``1 / scale`` (unbiased stochastic rounding), so the finest scale for the
        modulus is the default.
    """

    neighbours: int | str = "all"
    threshold: int | None = None
    clip: float = 1.0
    modulus_bits: int = 32
    max_weight: int = 1
    scale: float | None = None
    name: str = dataclasses.field(default="secagg+", init=False)

    def __post_init__(self) -> None:
        if not (self.neighbours == "all" or (isinstance(self.neighbours, int) and self.neighbours >= 1)):
            raise ConfigurationError(f"neighbours must be a positive integer or 'all', got {self.neighbours!r}")
        if self.threshold is not None and self.threshold < 1:
            raise ConfigurationError(f"threshold must be >= 1, got {self.threshold}")

    def round_config(self, *, round_id: int, num_clients: int, dim: int) -> RoundConfig:
        """The configuration every client of a round receives.

        Raises:
            ConfigurationError: fewer than 2 clients, a threshold above the degree, or
                quantisation that could overflow (the message names what to change).
        """
        if num_clients < 2:
            raise ConfigurationError(f"secure aggregation needs at least 2 clients, got {num_clients}")
        k = num_clients - 1 if self.neighbours == "all" else min(int(self.neighbours), num_clients - 1)
        t = self.threshold if self.threshold is not None else k // 2 + 1
        if t > k:
            raise ConfigurationError(f"threshold {t} exceeds the {k} neighbours each client has: "
                                     "lower threshold or raise neighbours")
        q = Quantizer.plan(num_clients=num_clients, clip=self.clip, max_weight=self.max_weight,
                           modulus_bits=self.modulus_bits, scale=self.scale)
        return RoundConfig(round_id=round_id, num_clients=num_clients, neighbours=k, threshold=t,
                           dim=dim, clip=q.clip, scale=q.scale, modulus_bits=q.modulus_bits,
                           max_weight=q.max_weight)

    def server_session(self, *, round_id: int, client_ids: tuple[int, ...], dim: int,
                       rng: np.random.Generator) -> SecAggPlusServer:
        cfg = self.round_config(round_id=round_id, num_clients=len(client_ids), dim=dim)
        return SecAggPlusServer(config=cfg, client_ids=client_ids, rng=rng)

    def client_session(self, *, client_id: int, vector: np.ndarray, weight: float,
                       rng: np.random.Generator) -> SecAggPlusClient:
        if float(weight) != int(weight) or not 1 <= weight <= self.max_weight:
            raise ValueError(f"weight must be an integer in 1..max_weight ({self.max_weight}), got {weight}")
        return SecAggPlusClient(client_id=client_id, vector=vector, weight=int(weight), rng=rng)
