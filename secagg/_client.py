"""The SecAgg+ client: a sans-IO state machine (see :mod:`secagg._stages` for the rules).

Threat model: the server may be honest-but-curious or actively malicious; other
clients may collude with it. A client only ever reveals, for each peer, either that
peer's self-mask share (the peer survived) or its mask-key share (it dropped), never
both, and answers the unmask request once (a retry or a second request gets
:class:`~secagg.LocalProtocolError`); so no single client's answers let the server
strip both masks of a survivor. Requests that break the protocol's rules are refused.

What one client cannot check (or bounds only when told to), and so what the
guarantees rest on:

- Equivocation. Each client answers for itself, so a malicious server can tell some
  of a survivor's neighbours that it survived and others that it dropped, and
  collect ``t`` shares of each kind. Unauthenticated rounds are therefore secure
  against an honest-but-curious server only. Authenticated rounds (``identities``)
  add the consistency check: a client answers only if ``t - 1`` of its neighbours
  signed the same survivor set. Each client signs one set, so the server would need
  two disjoint groups of ``t`` among a survivor's ``k + 1`` holders (colluding holders
  count in both): it stops equivocation when ``2 t - (k + 1)`` exceeds the number of
  colluding neighbours. :func:`~secagg.find_parameters` with
  ``threat="semi-malicious"`` chooses such a ``t``; the default ``"semi-honest"``
  does not promise it (n = 100, 10% dropout, 5% corrupt: k = 16, t = 6).
- The round's parameters and graph. ``threshold``, ``neighbours`` and the neighbour
  list come from the server; by default the client checks only that they are
  consistent (``2 <= t``, ``t - 1 <= its neighbours <= k``, distinct keys, signed keys
  in authenticated rounds). A malicious server can hand one client a weaker
  configuration (a low ``t`` and few neighbours) or neighbours that collude with it.
  A :class:`~secagg.ClientPolicy` bounds the numbers: a minimum ``t``, a minimum
  ``t / (k + 1)``, a minimum and a maximum ``k`` (the round's, and the neighbours the
  server forwards), and in authenticated rounds ``2 t - (k + 1) > c`` for the ``c``
  colluding neighbours the client wants the consistency check to withstand; a round
  outside them is refused at its first request, before the client sends anything (a
  short neighbour list at share keys, before it sends any share). Its defaults refuse
  nothing a legitimate round can hold (see :mod:`secagg._policy`), so a deployment must
  set its own. What no policy bounds is *which* peers are the
  client's neighbours: Bell et al. assume the graph is sampled honestly, and a server
  that picks colluders as one client's neighbours is stopped only by ``t`` (and
  ``c``) exceeding how many it can place there. The bounds protect each client's own
  secrets; that honest holders answer only with ``t - 1`` matching signatures relies
  on them running a policy too.
- Its own inputs: the protocol hides inputs, it does not validate them. A client may
  send any masked vector (within the modulus), and one that commits to a seed other
  than the one it shares can make the round fail (it is named, see
  :mod:`secagg._recovery`).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import _crypto, _shamir
from secagg import _messages as m
from secagg._backend import check_vector
from secagg._errors import InvalidCiphertext, LocalProtocolError, RemoteProtocolError
from secagg._policy import ClientPolicy
from secagg._quantize import Quantizer, word_dtype
from secagg._stages import CLIENT_EXPECTS, ClientStage, next_client_stage

__all__ = ["SecAggPlusClient", "self_mask_commitment", "share_point", "MAX_CLIENT_ID"]

_IDS = struct.Struct("<qq")
SERVER = "server"
MAX_CLIENT_ID = _shamir.PRIME - 2  # its share point, id + 1, must be a nonzero field element


def share_point(client_id: int) -> int:
    """The Shamir evaluation point of a client (ids are shifted so 0 is never used)."""
    return client_id + 1


def self_mask_commitment(seed: bytes, round_id: int, owner: int) -> bytes:
    """A binding commitment to a self-mask seed, checked by the server after recovery."""
    return hashlib.sha256(
        _crypto.LABELS["self_mask_commitment"] + _IDS.pack(round_id, owner) + seed
    ).digest()


class SecAggPlusClient:
    """One client's side of a SecAgg+ round over a float vector and an integer weight.

    In rounds with ``encoding="words"`` the client brings its own ``words`` (unsigned
    integers below ``2^modulus_bits``, already encoded by a layer above, for example a
    distributed-DP mechanism) instead of a float ``vector``; the sum wraps modulo
    ``2^modulus_bits`` and decoding it is that layer's business.

    ``policy`` (a :class:`~secagg.ClientPolicy`) bounds the threshold and neighbours the
    server may choose; a round outside it is refused with
    :class:`~secagg.RemoteProtocolError`. Without one, only consistency is checked.

    Raises:
        ValueError: inconsistent arguments, including a ``policy`` with
            ``colluding_neighbours`` but no ``identity`` (it bounds authenticated rounds).
    """

    def __init__(
        self,
        *,
        client_id: int,
        vector: np.ndarray | None = None,
        words: np.ndarray | None = None,
        weight: int,
        rng: np.random.Generator,
        keys: tuple[_crypto.KeyPair, _crypto.KeyPair] | None = None,
        self_mask_seed: bytes | None = None,
        identity: Ed25519PrivateKey | None = None,
        peer_identities: Mapping[int, bytes] | None = None,
        policy: ClientPolicy | None = None,
    ) -> None:
        if (identity is None) != (peer_identities is None):
            raise ValueError("identity and peer_identities must be given together")
        self.policy = policy if policy is not None else ClientPolicy()
        self.policy.check_identity(identity)
        if not 0 <= client_id <= MAX_CLIENT_ID:
            raise ValueError(f"client_id must be in 0..{MAX_CLIENT_ID} (Shamir share points), got {client_id}")
        self.client_id = client_id
        if (vector is None) == (words is None):
            raise ValueError("give exactly one of vector (floats) and words (encoded integers)")
        if words is not None and (words.ndim != 1 or words.dtype.kind != "u"):
            raise ValueError(f"words must be a one-dimensional unsigned array, got {words.dtype} {words.shape}")
        self._vector: np.ndarray | None = check_vector(vector) if vector is not None else None
        self._words = words
        self._weight = weight
        self._rng = rng
        self._identity = identity
        self._peer_identities = dict(peer_identities or {})
        self._survivor_set: np.ndarray | None = None
        self._enc, self._mask = keys if keys is not None else (_crypto.KeyPair.generate(),
                                                               _crypto.KeyPair.generate())
        if self_mask_seed is not None and len(self_mask_seed) != _crypto.SEED_BYTES:
            raise ValueError(f"self_mask_seed must be {_crypto.SEED_BYTES} bytes (full strength), "
                             f"got {len(self_mask_seed)}")
        self._seed = self_mask_seed if self_mask_seed is not None else os.urandom(_crypto.SEED_BYTES)
        self.stage = ClientStage.AWAIT_ADVERTISE
        self.config: m.RoundConfig | None = None
        self.quantized: np.ndarray | None = None
        self._peers: dict[int, m.PeerKeys] = {}
        self._inbox: dict[int, bytes] = {}
        self._box_keys: dict[int, bytes] = {}
        self._own_share = np.zeros(m.LIMBS, dtype=np.uint32)
        self._handlers: dict[ClientStage, Callable[..., object]] = {
            ClientStage.AWAIT_ADVERTISE: self._advertise,
            ClientStage.AWAIT_SHARE_KEYS: self._share_keys,
            ClientStage.AWAIT_MASKED_INPUT: self._masked_input,
            ClientStage.AWAIT_CONSISTENCY: self._consistency,
            ClientStage.AWAIT_UNMASK: self._unmask,
        }

    def receive(self, message: object) -> object:
        """Answer the server's request for the current stage.

        Raises:
            LocalProtocolError: the client is done or in its sticky error state.
            RemoteProtocolError: the request is of the wrong type or round (state kept),
                or breaks a protocol rule (the client moves to ``ERROR``).
        """
        if self.stage in (ClientStage.DONE, ClientStage.ERROR):
            raise LocalProtocolError(f"client {self.client_id} is {self.stage.value}; it answers nothing")
        expected = CLIENT_EXPECTS[self.stage]
        if not isinstance(message, expected):
            raise RemoteProtocolError(SERVER, f"expected {expected.__name__} in stage "
                                      f"{self.stage.value}, got {type(message).__name__}")
        if self.config is not None and getattr(message, "round_id", None) != self.config.round_id:
            raise RemoteProtocolError(SERVER, f"request for round {getattr(message, 'round_id', None)}, "
                                      f"this is round {self.config.round_id}")
        try:
            reply = self._handlers[self.stage](message)
        except RemoteProtocolError:
            self.stage = ClientStage.ERROR
            raise
        assert self.config is not None
        self.stage = next_client_stage(self.stage, authenticated=self.config.authenticated)
        return reply

    def _refuse(self, reason: str) -> RemoteProtocolError:
        return RemoteProtocolError(SERVER, f"client {self.client_id} refuses: {reason}")

    # -- stage handlers -------------------------------------------------------

    def _advertise(self, msg: m.AdvertiseRequest) -> m.AdvertiseKeys:
        cfg = msg.config
        breach = self.policy.refusal(cfg)
        if breach is not None:
            raise self._refuse(breach)
        self.quantized = self._encode(cfg)
        if self._identity is not None and not cfg.authenticated:
            raise self._refuse("it holds an identity key and only joins authenticated rounds")
        if cfg.authenticated and self._identity is None:
            raise self._refuse("the round is authenticated but the client has no identity key")
        self.config = cfg
        self._vector = self._words = None
        enc, mask = self._enc.public_bytes, self._mask.public_bytes
        signature = b"" if self._identity is None else _crypto.sign(
            self._identity, _crypto.advertised_payload(cfg.round_id, self.client_id, enc, mask))
        return m.AdvertiseKeys(round_id=cfg.round_id, encryption_key=enc, mask_key=mask, signature=signature)

    def _share_keys(self, msg: m.ShareKeysRequest) -> m.ShareKeys:
        cfg = self.config
        assert cfg is not None
        peers = msg.peers()
        if self.client_id in peers:
            raise self._refuse("it is listed as its own neighbour")
        if max(peers, default=0) > MAX_CLIENT_ID:
            raise self._refuse(f"neighbour id {max(peers)} is above the largest client id {MAX_CLIENT_ID}")
        if not cfg.threshold - 1 <= len(peers) <= cfg.neighbours:
            raise self._refuse(f"{len(peers)} neighbours, need {cfg.threshold - 1}..{cfg.neighbours}")
        breach = self.policy.neighbours_refusal(len(peers))
        if breach is not None:
            raise self._refuse(breach)
        own = {self._enc.public_bytes, self._mask.public_bytes}
        keys = [k for p in peers.values() for k in (p.encryption_key, p.mask_key)]
        if own & set(keys) or len(set(keys)) != len(keys):
            raise self._refuse("neighbour public keys repeat (its own or each other's)")
        if cfg.authenticated:
            self._verify_advertised(msg, peers, cfg.round_id)
        self._peers = peers
        ids = sorted(peers)
        secrets = _shamir.secret_to_limbs([self._seed, self._mask.private_bytes()])
        holders = sorted([*ids, self.client_id])  # the client keeps a share of its own
        shares = _shamir.split(secrets, np.array([share_point(v) for v in holders]), cfg.threshold)
        share_bytes = dict(zip(holders, shares.astype("<u4").reshape(len(holders), -1), strict=True))
        self._own_share = share_bytes[self.client_id][: m.LIMBS].copy()  # its self-mask share
        cts = []
        for v in ids:
            share = share_bytes[v]
            try:
                key = self._pair_key("share_key", self._enc, peers[v].encryption_key, v)
            except ValueError:
                raise self._refuse(f"neighbour {v} sent an invalid encryption key") from None
            self._box_keys[v] = key  # reused to open v's shares at unmask
            plain = _IDS.pack(self.client_id, v) + share.tobytes()
            cts.append(_crypto.seal(key, plain, round_id=cfg.round_id, sender=self.client_id, receiver=v))
        return m.ShareKeys(round_id=cfg.round_id,
                           self_mask_commitment=self_mask_commitment(self._seed, cfg.round_id, self.client_id),
                           receivers=m.ids(ids), ciphertexts=b"".join(cts))

    def _masked_input(self, msg: m.MaskedInputRequest) -> m.MaskedInput:
        cfg, words = self.config, self.quantized
        assert cfg is not None and words is not None
        inbox = msg.by_sender()
        unknown = set(inbox) - set(self._peers)
        if unknown:
            raise self._refuse(f"ciphertexts from non-neighbours {sorted(unknown)}")
        if len(inbox) + 1 < cfg.threshold:
            raise self._refuse(f"only {len(inbox)} neighbours remain, threshold is {cfg.threshold}")
        self._inbox = inbox
        expander = _crypto.MaskExpander(words.shape[0], words.dtype)
        masked = words.copy()
        expander.add(masked, _crypto.derive("self_mask", self._seed, round_id=cfg.round_id,
                                            a=self.client_id))
        for v in sorted(self._inbox):
            try:
                seed = self._pair_key("pairwise_mask", self._mask, self._peers[v].mask_key, v)
            except ValueError:
                raise self._refuse(f"neighbour {v} sent an invalid mask key") from None
            (expander.add if self.client_id < v else expander.subtract)(masked, seed)
        self.quantized = None
        return m.MaskedInput(round_id=cfg.round_id, masked=masked)

    def _consistency(self, msg: m.ConsistencyRequest) -> m.ConsistencySignature:
        cfg = self.config
        assert cfg is not None and self._identity is not None
        survivors = set(msg.survivors.tolist())
        if self.client_id not in survivors:
            raise self._refuse("the survivor set it is asked to sign does not include itself")
        if len(survivors & set(self._inbox)) + 1 < cfg.threshold:
            raise self._refuse(f"only {len(survivors & set(self._inbox))} surviving neighbours, "
                               f"threshold is {cfg.threshold}")
        self._survivor_set = np.sort(msg.survivors)
        payload = _crypto.survivors_payload(cfg.round_id, self._survivor_set)
        return m.ConsistencySignature(round_id=cfg.round_id, signature=_crypto.sign(self._identity, payload))

    def _unmask(self, msg: m.UnmaskRequest) -> m.UnmaskShares:
        cfg = self.config
        assert cfg is not None
        survivors, dropped = set(msg.survivors.tolist()), set(msg.dropped.tolist())
        if cfg.authenticated:
            self._check_consistency(msg, survivors, dropped)
        if survivors & dropped:
            raise self._refuse(f"asked for both shares of peers {sorted(survivors & dropped)}")
        if self.client_id in dropped:
            raise self._refuse("it is itself listed as dropped")
        strangers = (survivors | dropped) - set(self._inbox)
        if strangers:
            raise self._refuse(f"asked about peers it holds no shares of: {sorted(strangers)}")
        if len(survivors) + 1 < cfg.threshold:
            raise self._refuse(f"only {len(survivors)} surviving neighbours, threshold is {cfg.threshold}")
        found: dict[str, tuple[list[int], list[bytes]]] = {"self_mask": ([], []), "mask_key": ([], [])}
        found["self_mask"][0].append(self.client_id)  # it survived: its own self-mask share
        found["self_mask"][1].append(self._own_share.astype("<u4").tobytes())
        for owner in sorted(survivors | dropped):
            try:
                plain = self._open(owner)
            except InvalidCiphertext:
                continue  # cannot help with this owner; the server needs others' shares
            kind, part = ("self_mask", plain[16:80]) if owner in survivors else ("mask_key", plain[80:144])
            found[kind][0].append(owner)
            found[kind][1].append(part)

        def column(kind: str) -> tuple[np.ndarray, np.ndarray]:
            owners, parts = found[kind]
            shares = np.frombuffer(b"".join(parts), dtype="<u4").reshape(len(owners), m.LIMBS)
            return m.ids(owners), shares.astype(np.uint32)

        (so, ss), (ko, ks) = column("self_mask"), column("mask_key")
        return m.UnmaskShares(round_id=cfg.round_id, self_mask_owners=so, self_mask_shares=ss,
                              mask_key_owners=ko, mask_key_shares=ks)

    # -- helpers --------------------------------------------------------------

    def _encode(self, cfg: m.RoundConfig) -> np.ndarray:
        have = self._words if self._words is not None else self._vector
        assert have is not None
        if cfg.dim != have.shape[0]:
            raise self._refuse(f"round dimension {cfg.dim} but the update has {have.shape[0]}")
        if (cfg.encoding == "words") != (self._words is not None):
            raise self._refuse(f"round encoding is {cfg.encoding!r} but the client holds "
                               f"{'words' if self._words is not None else 'a float vector'}")
        if self._words is not None:
            if not 1 <= self._weight <= cfg.max_weight:
                raise self._refuse(f"weight {self._weight} is outside 1..{cfg.max_weight}")
            dtype = word_dtype(cfg.modulus_bits)
            if cfg.modulus_bits < 64 and self._words.size and int(self._words.max()) >> cfg.modulus_bits:
                raise self._refuse(f"words do not fit in {cfg.modulus_bits} bits")
            if self._weight >> cfg.modulus_bits:
                raise self._refuse(f"weight {self._weight} does not fit in {cfg.modulus_bits} bits")
            return np.append(self._words.astype(dtype), dtype.type(self._weight))
        try:
            quantizer = Quantizer(num_clients=cfg.num_clients, clip=cfg.clip, scale=cfg.scale,
                                  modulus_bits=cfg.modulus_bits, max_weight=cfg.max_weight)
            return quantizer.quantize(have, self._weight, self._rng)
        except ValueError as exc:  # overflow-prone config or a weight above max_weight
            raise self._refuse(str(exc)) from None

    def _verify_advertised(self, msg: m.ShareKeysRequest, peers: dict[int, m.PeerKeys], round_id: int) -> None:
        if not msg.signatures:
            raise self._refuse("an authenticated round's neighbour keys come without signatures")
        for i, v in enumerate(msg.neighbour_ids.tolist()):
            identity, p = self._peer_identities.get(v), peers[v]
            payload = _crypto.advertised_payload(round_id, v, p.encryption_key, p.mask_key)
            if identity is None or not _crypto.verify_signature(identity, msg.signature_of(i), payload):
                raise self._refuse(f"neighbour {v}'s keys are not signed by its identity key")

    def _check_consistency(self, msg: m.UnmaskRequest, survivors: set[int], dropped: set[int]) -> None:
        """Authenticated rounds: t neighbours signed the survivor set this client signed."""
        cfg, signed = self.config, self._survivor_set
        assert cfg is not None and signed is not None
        payload = _crypto.survivors_payload(cfg.round_id, signed)
        good = {v for i, v in enumerate(msg.signers.tolist())
                if v in self._inbox and v in self._peer_identities and _crypto.verify_signature(
                    self._peer_identities[v], msg.signatures[i * m.SIGNATURE_BYTES:(i + 1) * m.SIGNATURE_BYTES], payload)}
        if len(good) + 1 < cfg.threshold:
            raise self._refuse(f"only {len(good)} neighbours signed the survivor set, "
                               f"threshold is {cfg.threshold}")
        live = set(signed.tolist())
        if survivors != live & set(self._inbox) or dropped & live:
            raise self._refuse("the survivors and dropped it is asked about differ from the signed survivor set")

    def _pair_key(self, purpose: str, own: _crypto.KeyPair, peer_public: bytes, peer: int) -> bytes:
        assert self.config is not None
        lo, hi = sorted((self.client_id, peer))
        return _crypto.derive(purpose, own.exchange(peer_public), round_id=self.config.round_id, a=lo, b=hi)

    def _open(self, owner: int) -> bytes:
        assert self.config is not None
        plain = _crypto.open_sealed(self._box_keys[owner], self._inbox[owner], round_id=self.config.round_id,
                                    sender=owner, receiver=self.client_id)
        if len(plain) != m.SHARE_PLAINTEXT_BYTES or _IDS.unpack(plain[:16]) != (owner, self.client_id):
            raise InvalidCiphertext(owner, "share plaintext is malformed or misaddressed")
        return plain
