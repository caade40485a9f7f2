"""The ``secagg+`` backend: SecAgg+ sessions behind the common Backend interface."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg._client import SecAggPlusClient
from secagg._errors import ConfigurationError
from secagg._messages import RoundConfig
from secagg._params import find_parameters
from secagg._policy import ClientPolicy
from secagg._quantize import Quantizer
from secagg._server import SecAggPlusServer

__all__ = ["SecAggPlusBackend"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecAggPlusBackend:
    """Secure aggregation by SecAgg+ masking (Bell et al. 2020, Bonawitz et al. 2017).

    Parameters:
        neighbours: degree ``k`` of the neighbour graph (even, or at least n - 1);
            ``"all"`` for the complete graph of the original SecAgg; ``None`` (default)
            to let :func:`~secagg.find_parameters` choose ``k`` and ``t`` for the round's
            n from ``dropout``, ``corrupt`` and ``threat``, as Google's production SecAgg
            does (40-bit security, 20-bit correctness).
        threshold: shares ``t`` needed to recover a secret, out of the ``k + 1`` each
            secret has (every client keeps one of its own). By default: the finder's; for
            the complete graph ``ceil(n (1 - dropout))`` (Google's rule); for a given
            ``k`` a strict majority, ``(k + 1) // 2 + 1``.
        dropout, corrupt, threat: the expected fraction of clients that drop, the
            fraction that may collude with the server, and ``"semi-honest"`` or
            ``"semi-malicious"``, for choosing ``k`` and ``t``.
        clip: inputs are clipped to ``[-clip, clip]`` before quantisation.
        modulus_bits: the sum is computed modulo ``2^modulus_bits`` (16, 32 or 64-bit words).
        max_weight: largest integer weight a client may use (its example count, say).
        scale: quantisation levels per unit; by default the finest that cannot overflow.
        identities: Ed25519 public keys (raw, 32 bytes) of every client, registered out of
            band. When given, the round is authenticated: advertised keys are signed and
            checked by every neighbour, and a consistency check before unmasking stops a
            server from telling clients different stories about who dropped (the
            semi-malicious model of Bell et al. 2020) provided ``t`` is large enough:
            use ``threat="semi-malicious"`` with identities (the default
            ``"semi-honest"`` threshold can be too low to stop equivocation; see
            :mod:`secagg._client` for what a client cannot check).
        encoding: ``"quantize"`` (clients clip and quantise float vectors) or ``"words"``
            (clients hand in unsigned integers already encoded modulo ``2^modulus_bits``,
            for example by distributed DP; the sum wraps and is decoded above).

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

    neighbours: int | str | None = None
    threshold: int | None = None
    dropout: float = 0.1
    corrupt: float = 0.05
    threat: str = "semi-honest"
    clip: float = 1.0
    modulus_bits: int = 32
    max_weight: int = 1
    scale: float | None = None
    identities: Mapping[int, bytes] | None = None
    encoding: str = "quantize"
    name: str = dataclasses.field(default="secagg+", init=False)

    def __post_init__(self) -> None:
        if not (self.neighbours in (None, "all") or (isinstance(self.neighbours, int) and self.neighbours >= 2)):
            raise ConfigurationError(f"neighbours must be an integer >= 2, 'all' or None, got {self.neighbours!r}")
        if not (0 <= self.dropout < 1 and 0 <= self.corrupt < 1):
            raise ConfigurationError(f"dropout and corrupt must be in [0, 1), got {self.dropout}, {self.corrupt}")
        if self.encoding not in ("quantize", "words"):
            raise ConfigurationError(f"encoding must be 'quantize' or 'words', got {self.encoding!r}")
        if self.threshold is not None and self.threshold < 2:
            raise ConfigurationError(f"threshold must be >= 2 (one share would be the secret), got {self.threshold}")

    def round_config(self, *, round_id: int, num_clients: int, dim: int) -> RoundConfig:
        """The configuration every client of a round receives.

        Raises:
            ConfigurationError: fewer than 2 clients, a threshold above the degree, or
                quantisation that could overflow (the message names what to change).
        """
        if num_clients < 2:
            raise ConfigurationError(f"secure aggregation needs at least 2 clients, got {num_clients}")
        k, t = self.graph_parameters(num_clients)
        if t > k + 1:
            raise ConfigurationError(f"threshold {t} exceeds the {k + 1} shares each secret has "
                                     f"({k} neighbours and the client itself): lower threshold or raise neighbours")
        if self.encoding == "words":
            clip, scale = 1.0, 1.0
        else:
            q = Quantizer.plan(num_clients=num_clients, clip=self.clip, max_weight=self.max_weight,
                               modulus_bits=self.modulus_bits, scale=self.scale)
            clip, scale = q.clip, q.scale
        return RoundConfig(round_id=round_id, num_clients=num_clients, neighbours=k, threshold=t,
                           dim=dim, clip=clip, scale=scale, modulus_bits=self.modulus_bits,
                           max_weight=self.max_weight, authenticated=self.identities is not None,
                           encoding=self.encoding)

    def graph_parameters(self, num_clients: int) -> tuple[int, int]:
        """The neighbour count ``k`` and threshold ``t`` for a round of ``num_clients``.

        Raises:
            ConfigurationError: an odd ``k`` below ``n - 1``, or parameters the finder
                cannot satisfy.
        """
        n = num_clients
        if self.neighbours is None:
            found = find_parameters(clients=n, dropout=self.dropout, corrupt=self.corrupt, threat=self.threat)
            return found.neighbours, self.threshold if self.threshold is not None else found.threshold
        if self.neighbours == "all" or int(self.neighbours) >= n - 1:
            return n - 1, self.threshold if self.threshold is not None else max(2, math.ceil(n * (1 - self.dropout)))
        k = int(self.neighbours)
        if k % 2:
            raise ConfigurationError(f"neighbours must be even (a Harary graph), got {k}")
        return k, self.threshold if self.threshold is not None else (k + 1) // 2 + 1

    def server_session(self, *, round_id: int, client_ids: tuple[int, ...], dim: int,
                       rng: np.random.Generator) -> SecAggPlusServer:
        cfg = self.round_config(round_id=round_id, num_clients=len(client_ids), dim=dim)
        return SecAggPlusServer(config=cfg, client_ids=client_ids, rng=rng, identities=self.identities)

    def client_session(self, *, client_id: int, vector: np.ndarray, weight: float,
                       rng: np.random.Generator, identity: Ed25519PrivateKey | None = None,
                       policy: ClientPolicy | None = None) -> SecAggPlusClient:
        """A client's session; ``identity`` is its Ed25519 key in authenticated rounds,
        ``policy`` the weakest round it joins (:class:`~secagg.ClientPolicy`).

        The round's ``max_weight`` is the server's (it arrives in the round config, and
        the session refuses a round whose cap its weight exceeds), so a client's own
        backend settings do not cap it.

        Raises:
            ValueError: a weight that is not a positive integer, an identity given
                (or missing) when the backend is (not) authenticated, or a policy with
                ``colluding_neighbours`` on an unauthenticated backend.
        """
        if float(weight) != int(weight) or weight < 1:
            raise ValueError(f"weight must be a positive integer, got {weight}")
        if (identity is None) != (self.identities is None):
            raise ValueError("identity is required exactly when the backend has identities")
        words = self.encoding == "words"
        return SecAggPlusClient(client_id=client_id, vector=None if words else vector,
                                words=vector if words else None, weight=int(weight), rng=rng,
                                identity=identity, peer_identities=self.identities, policy=policy)
