"""The SecAgg+ client: a sans-IO state machine (see :mod:`secagg._stages` for the rules).

Threat model: the server may be honest-but-curious or actively malicious; other
clients may collude with it. A client only ever reveals, for each peer, either that
peer's self-mask share (the peer survived) or its mask-key share (it dropped), never
both, and answers the unmask request once; so the server cannot strip both masks of
any survivor. Requests that break the protocol's rules are refused.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable

import numpy as np

from secagg import _crypto, _shamir
from secagg import _messages as m
from secagg._backend import check_vector
from secagg._errors import InvalidCiphertext, LocalProtocolError, RemoteProtocolError
from secagg._quantize import Quantizer
from secagg._stages import CLIENT_EXPECTS, CLIENT_NEXT, ClientStage

__all__ = ["SecAggPlusClient", "self_mask_commitment", "share_point"]

_IDS = struct.Struct("<qq")
SERVER = "server"


def share_point(client_id: int) -> int:
    """The Shamir evaluation point of a client (ids are shifted so 0 is never used)."""
    return client_id + 1


def self_mask_commitment(seed: bytes, round_id: int, owner: int) -> bytes:
    """A binding commitment to a self-mask seed, checked by the server after recovery."""
    return hashlib.sha256(
        _crypto.LABELS["self_mask_commitment"] + _IDS.pack(round_id, owner) + seed
    ).digest()


def _limbs_to_bytes(limbs: np.ndarray) -> bytes:
    return limbs.astype("<u4").tobytes()


class SecAggPlusClient:
    """One client's side of a SecAgg+ round over a float vector and an integer weight."""

    def __init__(
        self,
        *,
        client_id: int,
        vector: np.ndarray,
        weight: int,
        rng: np.random.Generator,
        keys: tuple[_crypto.KeyPair, _crypto.KeyPair] | None = None,
        self_mask_seed: bytes | None = None,
    ) -> None:
        self.client_id = client_id
        self._vector: np.ndarray | None = check_vector(vector)
        self._weight = weight
        self._rng = rng
        self._enc, self._mask = keys if keys is not None else (_crypto.KeyPair.generate(),
                                                               _crypto.KeyPair.generate())
        self._seed = self_mask_seed if self_mask_seed is not None else os.urandom(_crypto.SEED_BYTES)
        self.stage = ClientStage.AWAIT_ADVERTISE
        self.config: m.RoundConfig | None = None
        self.quantized: np.ndarray | None = None
        self._peers: dict[int, m.PeerKeys] = {}
        self._inbox: dict[int, bytes] = {}
        self._handlers: dict[ClientStage, Callable[..., object]] = {
            ClientStage.AWAIT_ADVERTISE: self._advertise,
            ClientStage.AWAIT_SHARE_KEYS: self._share_keys,
            ClientStage.AWAIT_MASKED_INPUT: self._masked_input,
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
        self.stage = CLIENT_NEXT[self.stage]
        return reply

    def _refuse(self, reason: str) -> RemoteProtocolError:
        return RemoteProtocolError(SERVER, f"client {self.client_id} refuses: {reason}")

    # -- stage handlers -------------------------------------------------------

    def _advertise(self, msg: m.AdvertiseRequest) -> m.AdvertiseKeys:
        cfg = msg.config
        assert self._vector is not None
        if cfg.dim != self._vector.shape[0]:
            raise self._refuse(f"round dimension {cfg.dim} but the update has {self._vector.shape[0]}")
        try:
            quantizer = Quantizer(num_clients=cfg.num_clients, clip=cfg.clip, scale=cfg.scale,
                                  modulus_bits=cfg.modulus_bits, max_weight=cfg.max_weight)
            self.quantized = quantizer.quantize(self._vector, self._weight, self._rng)
        except ValueError as exc:  # overflow-prone config or a weight above max_weight
            raise self._refuse(str(exc)) from None
        self.config = cfg
        self._vector = None
        return m.AdvertiseKeys(round_id=cfg.round_id, encryption_key=self._enc.public_bytes,
                               mask_key=self._mask.public_bytes)

    def _share_keys(self, msg: m.ShareKeysRequest) -> m.ShareKeys:
        cfg = self.config
        assert cfg is not None
        peers = {p.client_id: p for p in msg.neighbours}
        if self.client_id in peers:
            raise self._refuse("it is listed as its own neighbour")
        if not cfg.threshold <= len(peers) <= cfg.neighbours:
            raise self._refuse(f"{len(peers)} neighbours, need {cfg.threshold}..{cfg.neighbours}")
        own = {self._enc.public_bytes, self._mask.public_bytes}
        keys = [k for p in peers.values() for k in (p.encryption_key, p.mask_key)]
        if own & set(keys) or len(set(keys)) != len(keys):
            raise self._refuse("neighbour public keys repeat (its own or each other's)")
        self._peers = peers
        ids = sorted(peers)
        secrets = _shamir.secret_to_limbs([self._seed, self._mask.private_bytes()])
        shares = _shamir.split(secrets, np.array([share_point(v) for v in ids]), cfg.threshold)
        cts = []
        for v, share in zip(ids, shares, strict=True):
            try:
                key = self._pair_key("share_key", self._enc, peers[v].encryption_key, v)
            except ValueError:
                raise self._refuse(f"neighbour {v} sent an invalid encryption key") from None
            plain = _IDS.pack(self.client_id, v) + _limbs_to_bytes(share[0]) + _limbs_to_bytes(share[1])
            cts.append((v, _crypto.seal(key, plain, round_id=cfg.round_id, sender=self.client_id,
                                        receiver=v)))
        return m.ShareKeys(round_id=cfg.round_id,
                           self_mask_commitment=self_mask_commitment(self._seed, cfg.round_id, self.client_id),
                           ciphertexts=tuple(cts))

    def _masked_input(self, msg: m.MaskedInputRequest) -> m.MaskedInput:
        cfg, words = self.config, self.quantized
        assert cfg is not None and words is not None
        senders = [s for s, _ in msg.ciphertexts]
        unknown = set(senders) - set(self._peers)
        if unknown:
            raise self._refuse(f"ciphertexts from non-neighbours {sorted(unknown)}")
        if len(senders) < cfg.threshold:
            raise self._refuse(f"only {len(senders)} neighbours remain, threshold is {cfg.threshold}")
        self._inbox = dict(msg.ciphertexts)
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

    def _unmask(self, msg: m.UnmaskRequest) -> m.UnmaskShares:
        cfg = self.config
        assert cfg is not None
        survivors, dropped = set(msg.survivors), set(msg.dropped)
        if survivors & dropped:
            raise self._refuse(f"asked for both shares of peers {sorted(survivors & dropped)}")
        if self.client_id in dropped:
            raise self._refuse("it is itself listed as dropped")
        strangers = (survivors | dropped) - set(self._inbox)
        if strangers:
            raise self._refuse(f"asked about peers it holds no shares of: {sorted(strangers)}")
        if len(survivors) + 1 < cfg.threshold:
            raise self._refuse(f"only {len(survivors)} surviving neighbours, threshold is {cfg.threshold}")
        self_shares, key_shares = [], []
        for owner in sorted(survivors | dropped):
            try:
                plain = self._open(owner)
            except InvalidCiphertext:
                continue  # cannot help with this owner; the server needs others' shares
            if owner in survivors:
                self_shares.append((owner, plain[16:80]))
            else:
                key_shares.append((owner, plain[80:144]))
        return m.UnmaskShares(round_id=cfg.round_id, self_mask_shares=tuple(self_shares),
                              mask_key_shares=tuple(key_shares))

    # -- helpers --------------------------------------------------------------

    def _pair_key(self, purpose: str, own: _crypto.KeyPair, peer_public: bytes, peer: int) -> bytes:
        assert self.config is not None
        lo, hi = sorted((self.client_id, peer))
        return _crypto.derive(purpose, own.exchange(peer_public), round_id=self.config.round_id, a=lo, b=hi)

    def _open(self, owner: int) -> bytes:
        assert self.config is not None
        key = self._pair_key("share_key", self._enc, self._peers[owner].encryption_key, owner)
        plain = _crypto.open_sealed(key, self._inbox[owner], round_id=self.config.round_id,
                                    sender=owner, receiver=self.client_id)
        if len(plain) != 144 or _IDS.unpack(plain[:16]) != (owner, self.client_id):
            raise InvalidCiphertext(owner, "share plaintext is malformed or misaddressed")
        return plain
