"""Distributed DP over SecAgg+: a backend whose clients add their share of the noise.

``DistributedDPBackend`` wraps SecAgg+ in its ``"words"`` encoding: each client
clips, rotates, rounds and noises its update with :func:`~dp.encode_client` into
integers modulo ``2^bits``; SecAgg+ sums them modulo ``2^bits``; the server decodes
the noisy sum with :func:`~dp.decode_sum`. Nobody, the server included, sees an
un-noised sum.

Honest accounting about dropouts: the server can only finish a round when every
survivor's self mask has ``t`` shares among the survivors (itself included), so at
least ``t`` inputs (and their noise) are in any released sum. The accountant assumes
exactly that many, ``min_clients = min(t, E)`` with ``E`` the expected survivors; a
sum over fewer is refused. By default ``t = E``, so that with no more dropouts than
expected the accounted and the actual noise coincide.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dp._clipping import clip_l2
from dp._distributed import DistributedDPConfig, decode_sum, distributed_epsilon, encode_client
from dp._errors import DPValueError
from secagg import (
    AggregateResult,
    ClientPolicy,
    ConfigurationError,
    RemoteProtocolError,
    SecAggPlusBackend,
    SecAggPlusClient,
    SecAggPlusServer,
)
from secagg._messages import AdvertiseRequest

__all__ = ["DistributedDPBackend", "rotation_seed", "DDP_CONFIG_KEYS"]

#: fit-config keys under which the coordinator's strategy publishes the parameters that
#: fix every client's encoding (mechanism, noise multiplier, clip, modulus bits)
DDP_CONFIG_KEYS = {"mechanism": "blindsum.ddp_mechanism",
                   "noise_multiplier": "blindsum.ddp_noise_multiplier",
                   "clip": "blindsum.ddp_clip", "bits": "blindsum.ddp_bits"}


def rotation_seed(round_id: int) -> bytes:
    """The round's public seed for the randomised Hadamard rotation.

    Public on purpose: the rotation only spreads the norm across coordinates (utility);
    privacy rests on the clipping, the rounding bound and the noise.
    """
    return hashlib.sha256(b"blindsum/v1/ddp/rotation" + struct.pack("<q", round_id)).digest()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DistributedDPBackend:
    """SecAgg+ with distributed discrete Gaussian or Skellam noise added by the clients.

    Parameters:
        mechanism: ``"dgauss"`` (Kairouz, Liu, Steinke 2021) or ``"skellam"``
            (Agarwal, Kairouz, Liu 2021).
        noise_multiplier: z; the sum over the expected survivors carries noise of
            standard deviation ``z * clip`` in input units.
        clip: L2 bound on each client's update.
        bits: the SecAgg+ modulus is ``2^bits``.
        expected_dropout: the fraction of sampled clients expected to drop; each
            client's noise share is sized for the expected survivors.
        neighbours, threshold, identities: as :class:`~secagg.SecAggPlusBackend`;
            ``threshold`` defaults to the expected survivors.

    Notes:
        Privacy: the released sum is DP even towards the server, provided the
        survivors' own noise stays secret; clients colluding with the server can
        subtract theirs, which lowers the noise by their share. Accounting covers every
        survivor count from ``t`` up; with more dropouts than the threshold allows
        the round fails rather than releasing a less-noised sum. Utility: the modular
        sum wraps (rarely, by the choice of the grid step) and rounding adds a little
        error; ``bits`` too small for the noise and the number of clients is refused.
        Every client counts with weight 1: a per-client weight would scale its
        sensitivity.
    """

    mechanism: str = "dgauss"
    noise_multiplier: float
    clip: float
    bits: int = 20
    expected_dropout: float = 0.0
    neighbours: int | str = "all"
    threshold: int | None = None
    identities: Mapping[int, bytes] | None = None
    name: str = dataclasses.field(default="secagg+ddp", init=False)
    # A coordinator opens the session over the clients READY after fit, never over the
    # sampled ones before (docs/transport.md, "A round"): the noise shares and the
    # threshold are sized for the session's clients, and one that refuses the round in
    # fit (its noise parameters differ) must not count as a dropout.
    pipeline_fit: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.expected_dropout < 1.0:
            raise DPValueError(f"expected_dropout must be in [0, 1), got {self.expected_dropout}")

    def fit_config(self) -> dict[str, str | float | int]:
        """The public parameters a client's encoding depends on, as fit-config entries."""
        return {key: getattr(self, name) for name, key in DDP_CONFIG_KEYS.items()}

    def check_fit_config(self, config: Mapping[str, object]) -> None:
        """Refuse a round whose strategy encodes with other parameters than this client.

        A client that encoded its update with another noise multiplier, clip, bits or
        mechanism than the coordinator decodes with would spoil the sum (or carry less
        noise than it agreed to); parameters the config does not give are not checked.

        Raises:
            DPValueError: naming each parameter that differs, with both values.
        """
        differ = [f"{name} {config[key]!r} (this client: {getattr(self, name)!r})"
                  for name, key in DDP_CONFIG_KEYS.items()
                  if key in config and config[key] != getattr(self, name)]
        if differ:
            raise DPValueError("the coordinator's distributed-DP parameters differ from this "
                               "client's: " + "; ".join(differ))

    def round_parameters(self, *, num_clients: int, dim: int) -> tuple[SecAggPlusBackend, DistributedDPConfig]:
        """The SecAgg+ backend and the DP configuration of a round of ``num_clients``.

        Raises:
            DPValueError: the DP parameters cannot work (for example ``bits`` too small).
            ConfigurationError: the SecAgg+ parameters cannot work.
        """
        if num_clients < 2:
            raise ConfigurationError(f"distributed DP needs at least 2 clients, got {num_clients}")
        expected = max(2, math.ceil(num_clients * (1.0 - self.expected_dropout)))
        degree = num_clients - 1 if self.neighbours == "all" else min(int(self.neighbours), num_clients - 1)
        t = self.threshold if self.threshold is not None else min(expected, degree + 1)
        secagg = SecAggPlusBackend(neighbours=self.neighbours, threshold=t, encoding="words",
                                   modulus_bits=self.bits, identities=self.identities)
        cfg = DistributedDPConfig(dim=dim, bits=self.bits, clip=self.clip, noise_multiplier=self.noise_multiplier,
                                  expected_clients=expected, min_clients=min(t, expected),
                                  max_clients=num_clients, mechanism=self.mechanism)  # type: ignore[arg-type]
        return secagg, cfg

    def server_session(self, *, round_id: int, client_ids: tuple[int, ...], dim: int,
                       rng: np.random.Generator) -> DistributedDPServer:
        secagg, cfg = self.round_parameters(num_clients=len(client_ids), dim=dim)
        inner = secagg.server_session(round_id=round_id, client_ids=client_ids, dim=cfg.padded_dim, rng=rng)
        return DistributedDPServer(inner=inner, config=cfg, seed=rotation_seed(round_id))

    def client_session(self, *, client_id: int, vector: np.ndarray, weight: float,
                       rng: np.random.Generator, identity: Ed25519PrivateKey | None = None,
                       policy: ClientPolicy | None = None) -> DistributedDPClient:
        """A client's session; ``policy`` bounds the SecAgg+ round under the noise (as in
        :meth:`secagg.SecAggPlusBackend.client_session`)."""
        return DistributedDPClient(backend=self, client_id=client_id, vector=vector, rng=rng, identity=identity,
                                   policy=policy)

    def reference_sum(self, inputs: np.ndarray, weights: np.ndarray, contributors: np.ndarray) -> np.ndarray:
        """The exact sum the noisy aggregate estimates: the survivors' L2-clipped inputs."""
        return sum((clip_l2([inputs[c]], clip=self.clip).update[0] for c in contributors),
                   np.zeros(inputs.shape[1]))


class DistributedDPClient:
    """Encodes the update when the round's first request says how many clients it has."""

    def __init__(self, *, backend: DistributedDPBackend, client_id: int, vector: np.ndarray,
                 rng: np.random.Generator, identity: Ed25519PrivateKey | None,
                 policy: ClientPolicy | None = None) -> None:
        self._backend, self._id, self._vector, self._rng = backend, client_id, vector, rng
        if policy is not None:
            policy.check_identity(identity)  # now, not at the round's first message
        self._identity, self._policy = identity, policy
        self._inner: SecAggPlusClient | None = None

    def receive(self, message: object) -> object:
        """As :meth:`secagg.SecAggPlusClient.receive`.

        Raises:
            RemoteProtocolError: also when the round's SecAgg+ configuration differs
                from what the DP configuration requires (a server cannot quietly lower
                the threshold and with it the noise the accountant relies on).
        """
        if self._inner is None:
            if not isinstance(message, AdvertiseRequest):
                raise RemoteProtocolError("server", f"expected AdvertiseRequest, got {type(message).__name__}")
            self._inner = self._start(message)
        return self._inner.receive(message)

    def _start(self, request: AdvertiseRequest) -> SecAggPlusClient:
        got = request.config
        secagg, cfg = self._backend.round_parameters(num_clients=got.num_clients, dim=self._vector.shape[0])
        want = secagg.round_config(round_id=got.round_id, num_clients=got.num_clients, dim=cfg.padded_dim)
        if want != got:
            raise RemoteProtocolError("server", f"round configuration {got} differs from the "
                                      f"distributed-DP configuration {want}")
        words = encode_client(self._vector, cfg, rotation_seed(got.round_id), self._rng)
        self._vector = np.zeros(0)
        return secagg.client_session(client_id=self._id, vector=words, weight=1, rng=self._rng,
                                     identity=self._identity, policy=self._policy)


class DistributedDPServer:
    """Delegates the protocol to SecAgg+ and decodes the noisy sum at the end."""

    def __init__(self, *, inner: SecAggPlusServer, config: DistributedDPConfig, seed: bytes) -> None:
        self.inner, self.dp_config, self._seed = inner, config, seed

    @property
    def config(self) -> object:  # what simulate reports as k and t
        return self.inner.config

    @property
    def stage(self) -> str:
        return self.inner.stage

    @property
    def done(self) -> bool:
        return self.inner.done

    def next_messages(self) -> dict[int, object]:
        return self.inner.next_messages()

    def receive(self, client_id: int, message: object) -> None:
        self.inner.receive(client_id, message)

    def drop(self, client_id: int) -> None:
        self.inner.drop(client_id)

    def close_stage(self) -> None:
        self.inner.close_stage()

    def epsilon(self, *, delta: float, rounds: int = 1) -> float:
        """The epsilon the accountant gives this round's release (RDP, worst survivor count)."""
        return distributed_epsilon(self.dp_config, delta=delta, rounds=rounds)[0]

    def result(self) -> AggregateResult:
        """The decoded noisy sum of the survivors' clipped updates (weight = survivors).

        Raises:
            DPValueError: fewer survivors than the accountant assumed (never happens when
                the threshold is what :meth:`DistributedDPBackend.round_parameters` chose).
        """
        words = self.inner.result_words()
        survivors = self.inner.survivors
        noisy = decode_sum(words[:-1], self.dp_config, self._seed, num_survivors=len(survivors))
        return AggregateResult(weighted_sum=noisy, total_weight=float(len(survivors)),
                               contributors=survivors, dropped=tuple(sorted(self.inner.dropped_at)))
