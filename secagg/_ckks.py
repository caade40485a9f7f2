"""The ``ckks`` backend: clients encrypt, the coordinator adds ciphertexts, a key holder
decrypts only the sum.

Rules of the server session (stages are data: :data:`_NEXT_STAGE`, :data:`_EXPECTS`):

- ``encrypted_input``: every sampled client gets a :class:`CKKSRequest` and answers
  with a :class:`CKKSUpdate`: its packed ``[(w/S) x, w/S]``, encrypted seeded under
  the secret key on a key holder (16 B/float), under the public key otherwise (32).
  A client whose update is rejected (wrong key, corrupt, wrong length) is dropped
  and the error, naming it, is raised; the round goes on without it. The stage ends
  when nobody is pending, or on ``close_stage()`` (the pending become dropped).
- ``decrypt``: the encrypted sum goes to one key holder (the first sampled,
  surviving one in ``key_holders`` order) in a :class:`CKKSDecryptRequest`; it
  answers a :class:`CKKSDecryptReply` with the plaintext sum. A key holder that
  drops, times out or answers badly is replaced by the next one. Skipped when fewer
  than ``min_contributors`` clients are in the sum.
- ``done``: ``result()`` is the :class:`~secagg.AggregateResult`, or raises
  :class:`~secagg.RecoveryError` when the sum could not be decrypted.

An illegal call (wrong stage, unknown client) raises and leaves the state unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from secagg._backend import AggregateResult, check_vector
from secagg._ckks_crypto import (
    CKKSKeyMismatch,
    CKKSKeys,
    CKKSLengthMismatch,
    CKKSParams,
    pack,
    unpack,
)
from secagg._ckks_messages import (
    CKKSDecryptReply,
    CKKSDecryptRequest,
    CKKSRequest,
    CKKSUpdate,
    Stage,
)
from secagg._ckks_seal import Engine
from secagg._errors import (
    ConfigurationError,
    LocalProtocolError,
    RecoveryError,
    RemoteProtocolError,
)

__all__ = [
    "CKKSBackend",
    "CKKSServer",
    "CKKSClient",
    "CKKSRequest",
    "CKKSUpdate",
    "CKKSDecryptRequest",
    "CKKSDecryptReply",
    "Stage",
]


_NEXT_STAGE = {Stage.ENCRYPTED_INPUT: Stage.DECRYPT, Stage.DECRYPT: Stage.DONE}
_EXPECTS: dict[Stage, type] = {
    Stage.ENCRYPTED_INPUT: CKKSUpdate,
    Stage.DECRYPT: CKKSDecryptReply,
}


class CKKSServer:
    """Server session: adds ciphertexts with the public context only."""

    def __init__(
        self,
        *,
        keys: CKKSKeys,
        key_holders: tuple[int, ...] | None,
        round_id: int,
        client_ids: tuple[int, ...],
        dim: int,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        holders = client_ids if key_holders is None else key_holders
        self._holders = [cid for cid in holders if cid in set(client_ids)]
        if not self._holders:
            raise ConfigurationError(
                f"key_holders: none of {holders} is among the sampled clients; "
                "nobody could decrypt the sum"
            )
        self._engine = Engine(keys.public(), secret=False)
        self._params = keys.params
        self._round_id = round_id
        self._dim = dim
        self._stage = Stage.ENCRYPTED_INPUT
        self._pending = set(client_ids)
        request = CKKSRequest(
            round_id=round_id, dim=dim, n_clients=len(client_ids), key_id=keys.key_id
        )
        self._outbox: dict[int, object] = {cid: request for cid in client_ids}
        self._acc: list[Any] | None = None
        self._contributors: list[int] = []
        self._dropped: list[int] = []
        self._decryptor: int | None = None
        self._failed_decryptors: list[int] = []
        self._result: AggregateResult | None = None
        self._failure: str | None = None

    @property
    def stage(self) -> str:
        return self._stage.value

    @property
    def done(self) -> bool:
        return self._stage is Stage.DONE

    def next_messages(self) -> dict[int, object]:
        out, self._outbox = self._outbox, {}
        return out

    def receive(self, client_id: int, message: object) -> None:
        """Take a client's reply.

        Raises:
            LocalProtocolError: the round is over.
            RemoteProtocolError: the client is not expected now (state unchanged), or
                its message is wrong; then it is dropped (a CKKS update) or replaced
                as decryptor, and the round goes on. CKKS update errors are the
                :class:`~secagg.CKKSCiphertextError` subclasses.
        """
        if self.done:
            raise LocalProtocolError("the round is over")
        expected = self._pending if self._stage is Stage.ENCRYPTED_INPUT else {self._decryptor}
        if client_id not in expected:
            raise RemoteProtocolError(client_id, f"not expected in stage {self.stage}")
        want = _EXPECTS[self._stage]
        try:
            if isinstance(message, want) and getattr(message, "round_id", None) == self._round_id:
                if isinstance(message, CKKSUpdate):
                    self._take_update(client_id, message)
                elif isinstance(message, CKKSDecryptReply):
                    self._take_plaintext(client_id, message)
                return
            raise RemoteProtocolError(
                client_id, f"expected {want.__name__} for round {self._round_id}, "
                f"got {type(message).__name__}"
            )
        except RemoteProtocolError:
            self._reject(client_id)
            raise

    def _take_update(self, client_id: int, message: CKKSUpdate) -> None:
        if message.key_id != self._engine.key_id:
            raise CKKSKeyMismatch(
                client_id, f"encrypted under key {message.key_id.hex()}, "
                f"expected {self._engine.key_id.hex()}"
            )
        vectors = self._engine.load(message.chunks, self._dim + 1, peer=client_id)
        self._acc = self._engine.add_into(self._acc, vectors)
        self._pending.discard(client_id)
        self._contributors.append(client_id)
        self._advance_if_complete()

    def _take_plaintext(self, client_id: int, message: CKKSDecryptReply) -> None:
        values = message.values
        if not isinstance(values, np.ndarray) or values.shape != (self._dim + 1,):
            raise CKKSLengthMismatch(
                client_id, f"decrypted sum must have shape ({self._dim + 1},), got "
                f"{getattr(values, 'shape', type(values).__name__)}"
            )
        try:
            values = check_vector(values, name="decrypted sum")
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(client_id, str(exc)) from None
        weighted_sum, total_weight = unpack(values, self._params.weight_scale)
        self._result = AggregateResult(
            weighted_sum=weighted_sum,
            total_weight=total_weight,
            contributors=tuple(sorted(self._contributors)),
            dropped=tuple(sorted(self._dropped)),
        )
        self._stage = Stage.DONE

    def _reject(self, client_id: int) -> None:
        if self._stage is Stage.ENCRYPTED_INPUT:
            self.drop(client_id)
        elif self._stage is Stage.DECRYPT:
            self._next_decryptor()

    def drop(self, client_id: int) -> None:
        """Record that a client vanished; a no-op for one already out of the round."""
        if self._stage is Stage.ENCRYPTED_INPUT and client_id in self._pending:
            self._pending.discard(client_id)
            self._dropped.append(client_id)
            self._holders = [h for h in self._holders if h != client_id]
            self._advance_if_complete()
        elif self._stage is Stage.DECRYPT and client_id == self._decryptor:
            self._next_decryptor()

    def close_stage(self) -> None:
        """The stage's deadline passed: the pending clients (or the decryptor) are out."""
        if self._stage is Stage.ENCRYPTED_INPUT:
            for cid in sorted(self._pending):
                self._pending.discard(cid)
                self._dropped.append(cid)
                self._holders = [h for h in self._holders if h != cid]
            self._advance_if_complete()
        elif self._stage is Stage.DECRYPT:
            self._next_decryptor()

    def _advance_if_complete(self) -> None:
        if self._stage is not Stage.ENCRYPTED_INPUT or self._pending:
            return
        self._stage = _NEXT_STAGE[self._stage]
        if not self._contributors:
            self._result = AggregateResult(
                weighted_sum=np.zeros(self._dim), total_weight=0.0, contributors=(),
                dropped=tuple(sorted(self._dropped)),
            )
            self._stage = Stage.DONE
        elif len(self._contributors) < self._params.min_contributors:
            self._fail(
                f"only {len(self._contributors)} client(s) in the sum, fewer than "
                f"min_contributors={self._params.min_contributors}; not decrypted"
            )
        else:
            self._next_decryptor()

    def _next_decryptor(self) -> None:
        if self._decryptor is not None:
            self._failed_decryptors.append(self._decryptor)
        self._outbox = {}
        if not self._holders:
            self._decryptor = None
            self._fail(
                "no key holder decrypted the sum (tried "
                f"{self._failed_decryptors or 'none: all key holders dropped'})"
            )
            return
        assert self._acc is not None
        self._decryptor = self._holders.pop(0)
        self._outbox[self._decryptor] = CKKSDecryptRequest(
            round_id=self._round_id,
            dim=self._dim,
            key_id=self._engine.key_id,
            contributors=tuple(sorted(self._contributors)),
            chunks=self._engine.serialize(self._acc),
        )

    def _fail(self, reason: str) -> None:
        self._failure = reason
        self._stage = Stage.DONE

    def result(self) -> AggregateResult:
        """The weighted sum of the contributors, decrypted.

        Raises:
            LocalProtocolError: the round is not done.
            RecoveryError: the sum could not be decrypted (too few contributors,
                or no key holder answered).
        """
        if not self.done:
            raise LocalProtocolError(f"result() in stage {self.stage}, before the round is done")
        if self._result is None:
            raise RecoveryError(str(self._failure), {})
        return self._result


class CKKSClient:
    """Client session: encrypts its update; a key holder also decrypts the sum."""

    def __init__(self, *, keys: CKKSKeys, vector: np.ndarray, weight: float) -> None:
        vector = check_vector(vector)
        self._dim = vector.shape[0]
        self._packed = pack(vector, weight, keys.params.weight_scale)  # the only copy kept
        self._keys = keys
        self._engine: Engine | None = None
        self._sent = False
        self._decrypted = False

    def _get_engine(self) -> Engine:
        """The client's context: the secret key on key holders (seeded encryption)."""
        if self._engine is None:
            self._engine = Engine(self._keys, secret=self._keys.has_secret)
        return self._engine

    def receive(self, message: object) -> object | None:
        """Answer the server.

        Raises:
            RemoteProtocolError: (peer ``"server"``) an unexpected or inconsistent
                request, or a decryption request this client must refuse.
            ConfigurationError: this client's weighted update could overflow the
                sum of ``n_clients`` updates (raise ``weight_scale``).
        """
        if isinstance(message, CKKSRequest):
            return self._encrypt(message)
        if isinstance(message, CKKSDecryptRequest):
            return self._decrypt(message)
        raise RemoteProtocolError("server", f"unexpected {type(message).__name__}")

    def _check_key(self, key_id: bytes) -> None:
        if key_id != self._keys.key_id:
            raise RemoteProtocolError(
                "server", f"uses key {key_id.hex()}, this client has {self._keys.key_id.hex()}"
            )

    def _encrypt(self, message: CKKSRequest) -> CKKSUpdate:
        if self._sent:
            raise RemoteProtocolError("server", "asked twice for the same update")
        self._check_key(message.key_id)
        if message.dim != self._dim:
            raise RemoteProtocolError(
                "server", f"asks for dimension {message.dim}, update has {self._dim}"
            )
        params = self._keys.params
        peak = float(np.max(np.abs(self._packed)))
        if peak * max(message.n_clients, 1) > params.headroom:
            raise ConfigurationError(
                f"weight_scale: |w/S * x| reaches {peak:.4g}; {message.n_clients} such "
                f"updates could exceed the CKKS headroom {params.headroom:.4g} and wrap "
                "around; raise weight_scale (or lower scale_bits)"
            )
        engine = self._get_engine()
        chunks = engine.encrypt(self._packed)
        self._sent = True
        return CKKSUpdate(round_id=message.round_id, key_id=engine.key_id, chunks=chunks)

    def _decrypt(self, message: CKKSDecryptRequest) -> CKKSDecryptReply:
        if not self._keys.has_secret:
            raise RemoteProtocolError("server", "asks for decryption; this client holds no key")
        if self._decrypted:
            raise RemoteProtocolError("server", "asked twice to decrypt")
        self._check_key(message.key_id)
        minimum = self._keys.params.min_contributors
        if len(set(message.contributors)) < minimum:
            raise RemoteProtocolError(
                "server", f"asks to decrypt a sum of {len(set(message.contributors))} "
                f"client(s); this key holder requires at least {minimum}"
            )
        engine = self._get_engine()
        length = message.dim + 1
        ciphertexts = engine.load(message.chunks, length, peer="server")
        self._decrypted = True
        return CKKSDecryptReply(
            round_id=message.round_id, values=engine.decrypt(ciphertexts, length)
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSBackend:
    """Homomorphic aggregation with CKKS (TenSEAL): the coordinator sees only ciphertexts.

    ``keys`` holds the public key, plus the secret key where this process is a key
    holder. The server session uses only the public key. ``key_holders``
    names the clients that hold the secret key and may be asked to decrypt the sum,
    in order of preference (``None``: every client). See ``docs/ckks.md`` for the
    threat model.

    Notes:
        Whoever holds the secret key and sees one client's ciphertext can read that
        client's update: a key holder colluding with the coordinator learns every
        input. TenSEAL has no threshold or multi-key CKKS, so unlike SecAgg+ there is
        no "t of n must collude" guarantee.
    """

    keys: CKKSKeys
    key_holders: tuple[int, ...] | None = None
    name: str = dataclasses.field(default="ckks", init=False)

    @classmethod
    def generate(
        cls, params: CKKSParams | None = None, *, key_holders: tuple[int, ...] | None = None
    ) -> CKKSBackend:
        """A backend with fresh keys (for simulation: every party gets this object)."""
        return cls(keys=CKKSKeys.generate(params), key_holders=key_holders)

    def server_session(
        self, *, round_id: int, client_ids: tuple[int, ...], dim: int, rng: np.random.Generator
    ) -> CKKSServer:
        """``rng`` is unused: the server draws nothing."""
        return CKKSServer(
            keys=self.keys, key_holders=self.key_holders, round_id=round_id,
            client_ids=tuple(client_ids), dim=dim,
        )

    def client_session(
        self, *, client_id: int, vector: np.ndarray, weight: float, rng: np.random.Generator
    ) -> CKKSClient:
        """A client session; only key holders keep the secret key (and encrypt seeded).

        ``rng`` is unused: encryption randomness must be cryptographic and comes
        from SEAL's OS-seeded generator.

        Raises:
            ValueError: the weight is not positive.
        """
        if not (np.isfinite(weight) and weight > 0):
            raise ValueError(f"weight must be positive, got {weight}")
        holder = self.key_holders is None or client_id in self.key_holders
        keys = self.keys if holder else self.keys.public()
        return CKKSClient(keys=keys, vector=vector, weight=weight)
