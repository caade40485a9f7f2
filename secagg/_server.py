"""The SecAgg+ server: a sans-IO state machine (rules in :mod:`secagg._stages`).

The server learns only the sum of the survivors' quantised inputs. It tolerates any
set of dropouts at any stage as long as every secret it must recover (the self-mask
seed of each survivor, the mask key of each dropped client whose masks are in the
sum) still has ``threshold`` shares among the clients that answer the unmask stage;
when that fails it stops in ``FAILED`` with a :class:`~secagg.RecoveryError` that
lists every secret short of shares.

A misbehaving client (wrong message, wrong length, bad ciphertext routing, an
inconsistent share) gets a :class:`~secagg.RemoteProtocolError` naming it and is
dropped; the round goes on without it where the protocol allows. Recovered secrets
are checked (mask keys against their advertised public keys, self-mask seeds against
their commitments), so a bad share can never produce a wrong sum silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from secagg import _crypto, _shamir
from secagg import _messages as m
from secagg._backend import AggregateResult
from secagg._client import MAX_CLIENT_ID, self_mask_commitment
from secagg._errors import (
    InvalidShare,
    LocalProtocolError,
    RecoveryError,
    RemoteProtocolError,
)
from secagg._graph import harary_graph
from secagg._quantize import Quantizer, word_dtype
from secagg._recovery import recover_secrets
from secagg._stages import SERVER_EXPECTS, ServerStage, next_server_stage

__all__ = ["SecAggPlusServer"]

_KINDS = ("self_mask", "mask_key")


class SecAggPlusServer:
    """The server side of one SecAgg+ round (a :class:`~secagg.ServerSession`)."""

    def __init__(self, *, config: m.RoundConfig, client_ids: tuple[int, ...], rng: np.random.Generator,
                 identities: Mapping[int, bytes] | None = None) -> None:
        if len(set(client_ids)) != len(client_ids) or any(not 0 <= c <= MAX_CLIENT_ID for c in client_ids):
            raise ValueError(f"client_ids must be distinct integers in 0..{MAX_CLIENT_ID} (Shamir share points)")
        if len(client_ids) != config.num_clients:
            raise ValueError(f"config.num_clients is {config.num_clients} but {len(client_ids)} client ids were given")
        if config.authenticated and identities is None:
            raise ValueError("an authenticated round needs the clients' identity public keys")
        self.config = config
        self._identities = dict(identities or {})
        self._signatures: dict[int, bytes] = {}  # advertised-key signatures, then survivor-set ones
        # In "words" rounds the clients encode; the modular sum is the result.
        self.quantizer = Quantizer(num_clients=config.num_clients, clip=config.clip, scale=config.scale,
                                   modulus_bits=config.modulus_bits, max_weight=config.max_weight) \
            if config.encoding == "quantize" else None
        self._rng = rng
        self._stage = ServerStage.ADVERTISE_KEYS
        self._expected: set[int] = set(client_ids)
        self._answered: set[int] = set()
        self._gone: set[int] = set()
        self.dropped_at: dict[int, str] = {}
        self._closed: set[str] = set()
        self.faults: list[RemoteProtocolError] = []
        self.failure: RecoveryError | None = None
        self._outbox: dict[int, object] = {c: m.AdvertiseRequest(config=config) for c in client_ids}
        self._keys: dict[int, m.PeerKeys] = {}
        self._seen_keys: set[bytes] = set()
        self._probe = _crypto.KeyPair.generate()  # checks advertised keys are usable
        self._graph: dict[int, np.ndarray] = {}
        self._commitments: dict[int, bytes] = {}
        self._cts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # sender -> (receivers, rows)
        self._mask_peers: dict[int, frozenset[int]] = {}
        self._u2: frozenset[int] = frozenset()
        self._u3: frozenset[int] = frozenset()
        self._sum = np.zeros(config.dim + 1, dtype=word_dtype(config.modulus_bits))
        # per kind: (holder, owners, shares) of every unmask answer
        self._shares: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {k: [] for k in _KINDS}
        self._handlers: dict[ServerStage, Callable[[int, object], None]] = {
            ServerStage.ADVERTISE_KEYS: self._on_advertise,  # type: ignore[dict-item]
            ServerStage.SHARE_KEYS: self._on_share_keys,  # type: ignore[dict-item]
            ServerStage.MASKED_INPUT: self._on_masked_input,  # type: ignore[dict-item]
            ServerStage.CONSISTENCY_CHECK: self._on_consistency,  # type: ignore[dict-item]
            ServerStage.UNMASK: self._on_unmask,  # type: ignore[dict-item]
        }
        self._closers: dict[ServerStage, Callable[[], None]] = {
            ServerStage.ADVERTISE_KEYS: self._close_advertise,
            ServerStage.SHARE_KEYS: self._close_share_keys,
            ServerStage.MASKED_INPUT: self._close_masked_input,
            ServerStage.CONSISTENCY_CHECK: self._close_consistency,
            ServerStage.UNMASK: self._finish,
        }

    # -- the ServerSession interface -----------------------------------------

    @property
    def stage(self) -> str:
        return self._stage.value

    @property
    def done(self) -> bool:
        return self._stage in (ServerStage.DONE, ServerStage.FAILED)

    @property
    def survivors(self) -> tuple[int, ...]:
        """Clients whose input is in the sum (known once the masked-input stage closed)."""
        return tuple(sorted(self._u3))

    def next_messages(self) -> dict[int, object]:
        out, self._outbox = self._outbox, {}
        return out

    def receive(self, client_id: int, message: object) -> None:
        """Take one client's answer for the current stage.

        Raises:
            LocalProtocolError: the round is over.
            RemoteProtocolError: the client is unknown, dropped, answers twice (state
                unchanged), or sent a wrong or invalid message (the client is dropped).
        """
        if self.done:
            raise LocalProtocolError(f"the round is {self._stage.value}; no more messages")
        if client_id not in self._expected:
            raise RemoteProtocolError(client_id, f"not expected in stage {self.stage} "
                                      "(unknown, dropped earlier, or already answered)")
        if client_id in self._answered:
            raise RemoteProtocolError(client_id, f"answered stage {self.stage} twice")
        want = SERVER_EXPECTS[self._stage]
        stale = [stage.value for stage, kind in SERVER_EXPECTS.items()
                 if kind is not want and isinstance(message, kind) and stage.value in self._closed]
        if stale:  # a late or repeated answer to a closed stage: refused, nothing changes
            raise RemoteProtocolError(client_id, f"sent a {type(message).__name__} for the closed stage "
                                      f"{stale[0]} during stage {self.stage}")
        try:
            if not isinstance(message, want):
                raise RemoteProtocolError(client_id, f"sent {type(message).__name__} in stage "
                                          f"{self.stage}, expected {want.__name__}")
            if getattr(message, "round_id", None) != self.config.round_id:
                raise RemoteProtocolError(client_id, f"message for round {getattr(message, 'round_id', None)}, "
                                          f"this is round {self.config.round_id}")
            self._handlers[self._stage](client_id, message)
        except RemoteProtocolError as exc:
            self.faults.append(exc)
            self.drop(client_id)
            raise
        self._answered.add(client_id)
        self._maybe_close()

    def drop(self, client_id: int) -> None:
        """Record that a client vanished; it takes no further part in the round."""
        if self.done or client_id in self._gone:
            return
        self._gone.add(client_id)
        if client_id in self._expected and client_id not in self._answered:
            self._expected.discard(client_id)
            self.dropped_at[client_id] = self.stage
            self._outbox.pop(client_id, None)
            self._maybe_close()

    def close_stage(self) -> None:
        """The stage's deadline passed: whoever has not answered is a dropout."""
        if self.done:
            raise LocalProtocolError(f"the round is already {self._stage.value}")
        for cid in sorted(self._expected - self._answered):
            self._expected.discard(cid)
            self.dropped_at[cid] = self.stage
        self._advance()

    def result(self) -> AggregateResult:
        """The dequantised weighted sum of the survivors.

        In ``"words"`` rounds ``weighted_sum`` holds the modular sum of the words as
        floats (exact below 2^53); decode :meth:`result_words` for anything else.

        Raises:
            LocalProtocolError: the round has not finished.
            RecoveryError: the round failed (the same error as :attr:`failure`).
        """
        words = self.result_words()
        if self.quantizer is None:
            weighted_sum, weight = words[:-1].astype(np.float64), float(words[-1])
        else:
            weighted_sum, weight = self.quantizer.dequantize(words)
        left_out = sorted(set(self.dropped_at) - self._u3)  # late dropouts are still in the sum
        return AggregateResult(weighted_sum=weighted_sum, total_weight=weight,
                               contributors=self.survivors, dropped=tuple(left_out))

    def result_words(self) -> np.ndarray:
        """The sum of the survivors' quantised words modulo 2^modulus_bits."""
        if self.failure is not None:
            raise self.failure
        if self._stage is not ServerStage.DONE:
            raise LocalProtocolError(f"result() in stage {self.stage}; the round is not done")
        if self.config.modulus_bits == 8 * self._sum.dtype.itemsize:
            return self._sum.copy()
        return self._sum & self._sum.dtype.type((1 << self.config.modulus_bits) - 1)

    # -- stage machinery -------------------------------------------------------

    def _maybe_close(self) -> None:
        if not self.done and self._expected <= self._answered:
            self._advance()

    def _advance(self) -> None:
        closing = self._stage
        self._closed.add(closing.value)
        try:
            self._closers[closing]()
        except RecoveryError as exc:
            self.faults.extend(RemoteProtocolError(s, exc.reason) for s in exc.suspects)
            self.failure = exc
            self._stage = ServerStage.FAILED
            self._outbox = {}
            return
        if self._stage is closing:  # a closer may finish the round early
            self._stage = next_server_stage(closing, authenticated=self.config.authenticated)
        self._answered = set()
        self._expected = set(self._outbox)

    def _fail_if_short(self, needs: dict[tuple[int, str], int], reason: str) -> None:
        t = self.config.threshold
        missing = {key: (have, t) for key, have in needs.items() if have < t}
        if missing:
            raise RecoveryError(reason, missing)

    # -- handlers ----------------------------------------------------------------

    def _on_advertise(self, cid: int, msg: m.AdvertiseKeys) -> None:
        if msg.encryption_key == msg.mask_key or {msg.encryption_key, msg.mask_key} & self._seen_keys:
            raise RemoteProtocolError(cid, "advertised a public key that is already in use")
        for key in (msg.encryption_key, msg.mask_key):
            try:  # a low-order point would make every key agreement with it fail (or leak)
                self._probe.exchange(key)
            except ValueError:
                raise RemoteProtocolError(cid, "advertised an invalid (low-order) X25519 key") from None
        if self.config.authenticated:
            identity = self._identities.get(cid)
            payload = _crypto.advertised_payload(self.config.round_id, cid, msg.encryption_key, msg.mask_key)
            if identity is None or not _crypto.verify_signature(identity, msg.signature, payload):
                raise RemoteProtocolError(cid, "advertised keys are not signed by its identity key")
            self._signatures[cid] = msg.signature
        self._seen_keys.update((msg.encryption_key, msg.mask_key))
        self._keys[cid] = m.PeerKeys(client_id=cid, encryption_key=msg.encryption_key, mask_key=msg.mask_key)

    def _on_share_keys(self, cid: int, msg: m.ShareKeys) -> None:
        if not np.array_equal(np.sort(msg.receivers), self._graph[cid]):
            raise RemoteProtocolError(cid, "share ciphertexts are not addressed to exactly its neighbours")
        self._commitments[cid] = msg.self_mask_commitment
        rows = np.frombuffer(msg.ciphertexts, dtype=np.uint8).reshape(-1, m.CIPHERTEXT_BYTES)
        self._cts[cid] = (msg.receivers, rows)

    def _on_masked_input(self, cid: int, msg: m.MaskedInput) -> None:
        want = (self.config.dim + 1,)
        if msg.masked.dtype != self._sum.dtype or msg.masked.shape != want:
            raise RemoteProtocolError(cid, f"masked input must be {self._sum.dtype} of shape {want}, "
                                      f"got {msg.masked.dtype} of shape {msg.masked.shape}")
        np.add(self._sum, msg.masked, out=self._sum)

    def _on_unmask(self, cid: int, msg: m.UnmaskShares) -> None:
        peers = self._mask_peers[cid]
        allowed = {"self_mask": (peers & self._u3) | {cid}, "mask_key": peers & (self._u2 - self._u3)}
        for kind in _KINDS:
            owners, shares = getattr(msg, f"{kind}_owners"), getattr(msg, f"{kind}_shares")
            stray = set(owners.tolist()) - allowed[kind]
            if stray:
                raise RemoteProtocolError(cid, f"sent {kind} shares for clients it was not asked about: "
                                          f"{sorted(stray)}")
            if shares.size and shares.max() >= _shamir.PRIME:
                raise InvalidShare(cid, f"{kind} share has an element outside the field")
        for kind in _KINDS:
            self._shares[kind].append((cid, getattr(msg, f"{kind}_owners"), getattr(msg, f"{kind}_shares")))

    # -- closers -------------------------------------------------------------------

    def _close_advertise(self) -> None:
        u1 = sorted(self._answered - self._gone)
        t = self.config.threshold
        if len(u1) < t:
            raise RecoveryError(f"only {len(u1)} clients advertised keys; threshold {t} needs at least {t}", {})
        k = min(self.config.neighbours, len(u1) - 1)
        graph = harary_graph(len(u1), k, self._rng)
        ids = np.array(u1, dtype=np.int64)
        enc = np.frombuffer(b"".join(self._keys[u].encryption_key for u in u1), np.uint8).reshape(-1, 32)
        msk = np.frombuffer(b"".join(self._keys[u].mask_key for u in u1), np.uint8).reshape(-1, 32)
        sig = np.frombuffer(b"".join(self._signatures.get(u, b"") for u in u1), np.uint8).reshape(len(u1), -1)
        self._outbox = {}
        for i, u in enumerate(u1):
            nbrs = np.array(graph[i], dtype=np.int64)
            self._graph[u] = ids[nbrs]
            self._outbox[u] = m.ShareKeysRequest(round_id=self.config.round_id, neighbour_ids=ids[nbrs],
                                                 encryption_keys=enc[nbrs].tobytes(), mask_keys=msk[nbrs].tobytes(),
                                                 signatures=sig[nbrs].tobytes())

    def _close_share_keys(self) -> None:
        u2 = set(self._answered)
        t = self.config.threshold
        short = {u for u in u2 if len(u2.intersection(self._graph[u].tolist())) + 1 < t}
        while short:  # with fewer than t - 1 live neighbours a client's self mask is lost
            for u in short:
                self.dropped_at.setdefault(u, ServerStage.SHARE_KEYS.value)
            u2 -= short
            short = {u for u in u2 if len(u2.intersection(self._graph[u].tolist())) + 1 < t}
        self._u2 = frozenset(u2)
        self._mask_peers = {u: frozenset(u2.intersection(self._graph[u].tolist())) for u in u2}
        senders = sorted(u2)
        if not senders:
            raise RecoveryError("no client completed the share-keys stage", {})
        # route every ciphertext between two members of U2 to its receiver, vectorised
        from_ = np.concatenate([np.full(self._cts[v][0].size, v, dtype=np.int64) for v in senders])
        to = np.concatenate([self._cts[v][0] for v in senders])
        rows = np.concatenate([self._cts[v][1] for v in senders])
        keep = np.isin(to, senders)
        from_, to, rows = from_[keep], to[keep], rows[keep]
        order = np.lexsort((from_, to))
        from_, to, rows = from_[order], to[order], rows[order]
        bounds = np.searchsorted(to, senders + [np.iinfo(np.int64).max])
        self._outbox = {}
        for i, u in enumerate(senders):
            lo, hi = bounds[i], bounds[i + 1]
            if u not in self._gone:
                self._outbox[u] = m.MaskedInputRequest(round_id=self.config.round_id, senders=from_[lo:hi].copy(),
                                                       ciphertexts=rows[lo:hi].tobytes())
        self._cts = {}

    def _close_masked_input(self) -> None:
        u3 = frozenset(self._answered)
        self._u3 = u3
        if not u3:
            self._stage = ServerStage.DONE
            self._outbox = {}
            return
        holders = u3 - self._gone
        needs = {(u, "self_mask"): len((self._mask_peers[u] | {u}) & holders) for u in u3}
        needs.update({(d, "mask_key"): len(self._mask_peers[d] & holders)
                      for d in self._u2 - u3 if self._mask_peers[d] & u3})
        self._fail_if_short(needs, "too few clients remain to recover the masks")
        if self.config.authenticated:
            everyone = m.ids(sorted(u3))
            self._signatures = {}
            self._outbox = {u: m.ConsistencyRequest(round_id=self.config.round_id, survivors=everyone)
                            for u in sorted(holders)}
        else:
            self._outbox = self._unmask_requests(holders)

    def _unmask_requests(self, holders: frozenset[int]) -> dict[int, object]:
        u3, signers = self._u3, sorted(self._signatures)
        out: dict[int, object] = {}
        for u in sorted(holders):
            mine = [v for v in signers if v in self._mask_peers[u]]
            out[u] = m.UnmaskRequest(round_id=self.config.round_id,
                                     survivors=m.ids(sorted(self._mask_peers[u] & u3)),
                                     dropped=m.ids(sorted(self._mask_peers[u] - u3)),
                                     signers=m.ids(mine),
                                     signatures=b"".join(self._signatures[v] for v in mine))
        return out

    def _on_consistency(self, cid: int, msg: m.ConsistencySignature) -> None:
        payload = _crypto.survivors_payload(self.config.round_id, m.ids(sorted(self._u3)))
        if not _crypto.verify_signature(self._identities[cid], msg.signature, payload):
            raise RemoteProtocolError(cid, "its signature of the survivor set does not verify")
        self._signatures[cid] = msg.signature

    def _close_consistency(self) -> None:
        holders = frozenset(self._answered) - self._gone
        needs = {(u, "self_mask"): len((self._mask_peers[u] | {u}) & holders) for u in self._u3}
        needs.update({(d, "mask_key"): len(self._mask_peers[d] & holders)
                      for d in self._u2 - self._u3 if self._mask_peers[d] & self._u3})
        self._fail_if_short(needs, "too few clients signed the survivor set to recover the masks")
        self._outbox = self._unmask_requests(holders)

    def _collect(self, kind: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per owner: the share points (sorted) and the shares received for them."""
        answers = self._shares[kind]
        if not answers:
            return {}
        holders = np.concatenate([np.full(o.size, h, dtype=np.int64) for h, o, _ in answers])
        owners = np.concatenate([o for _, o, _ in answers])
        shares = np.concatenate([s for _, _, s in answers]).astype(np.int64)
        if not owners.size:
            return {}
        order = np.lexsort((holders, owners))
        holders, owners, shares = holders[order], owners[order], shares[order]
        uniq, starts = np.unique(owners, return_index=True)
        ends = np.append(starts[1:], owners.size)
        points = holders + 1  # a client's share point is its id + 1
        return {int(o): (points[a:b], shares[a:b]) for o, a, b in zip(uniq, starts, ends, strict=True)}

    def _finish(self) -> None:
        u3, cfg = self._u3, self.config
        dropped = sorted(d for d in self._u2 - u3 if self._mask_peers[d] & u3)
        collected = {kind: self._collect(kind) for kind in _KINDS}
        wanted = [(u, "self_mask") for u in sorted(u3)] + [(d, "mask_key") for d in dropped]
        empty = (np.zeros(0, dtype=np.int64), np.zeros((0, m.LIMBS), dtype=np.int64))
        shares = {key: collected[key[1]].get(key[0], empty) for key in wanted}
        self._fail_if_short({key: len(pts) for key, (pts, _) in shares.items()},
                            "too few unmask answers to recover the masks")

        def check(owner: int, kind: str, secret: bytes) -> bool:
            if kind == "self_mask":
                return self_mask_commitment(secret, cfg.round_id, owner) == self._commitments[owner]
            return _crypto.KeyPair.from_private_bytes(secret).public_bytes == self._keys[owner].mask_key

        secrets, bad = recover_secrets(shares, threshold=cfg.threshold, check=check)
        for holder_point, (owner, kind) in bad:
            self.faults.append(InvalidShare(holder_point - 1, f"inconsistent {kind} share of client {owner}"))
        expander = _crypto.MaskExpander(cfg.dim + 1, self._sum.dtype)
        for u in sorted(u3):
            expander.subtract(self._sum, _crypto.derive("self_mask", secrets[(u, "self_mask")],
                                                        round_id=cfg.round_id, a=u))
        parsed: dict[int, X25519PublicKey] = {}  # each survivor's mask key, parsed once
        for d in dropped:
            key_pair = _crypto.KeyPair.from_private_bytes(secrets[(d, "mask_key")])
            for v in sorted(self._mask_peers[d] & u3):
                lo, hi = sorted((v, d))
                if v not in parsed:
                    parsed[v] = X25519PublicKey.from_public_bytes(self._keys[v].mask_key)
                seed = _crypto.derive("pairwise_mask", key_pair.exchange(parsed[v]),
                                      round_id=cfg.round_id, a=lo, b=hi)
                # survivor v added +mask when v < d and -mask otherwise; take it back out
                (expander.subtract if v < d else expander.add)(self._sum, seed)
        self._outbox = {}
