"""SecAgg+ messages: frozen, validated dataclasses with wire tags 10-29.

Each message checks its own shape in ``__post_init__`` (so a malformed one cannot
exist, and decoding one raises :class:`~secagg.DecodeError`); whether it fits the
round (right peers, right length) is checked by the party that receives it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from secagg import _wire

__all__ = [
    "RoundConfig",
    "PeerKeys",
    "AdvertiseRequest",
    "AdvertiseKeys",
    "ShareKeysRequest",
    "ShareKeys",
    "MaskedInputRequest",
    "MaskedInput",
    "UnmaskRequest",
    "UnmaskShares",
    "CIPHERTEXT_BYTES",
    "SHARE_PLAINTEXT_BYTES",
    "KEY_BYTES",
    "SIGNATURE_BYTES",
    "ConsistencyRequest",
    "ConsistencySignature",
    "LIMBS",
    "ids",
]

KEY_BYTES = 32
SIGNATURE_BYTES = 64
LIMBS = 16  # a share is sixteen 31-bit field elements
SHARE_PLAINTEXT_BYTES = 16 + 2 * 4 * LIMBS  # sender, receiver, self-mask share, mask-key share
CIPHERTEXT_BYTES = 12 + SHARE_PLAINTEXT_BYTES + 16  # nonce, plaintext, GCM tag


def _check_key(name: str, key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoundConfig:
    """What every client must know to take part in a round (sent in the first request).

    Every client holds one share of its own secrets besides the ``neighbours`` shares
    it hands out (as in Bonawitz et al. and Google's implementation), so a secret has
    ``neighbours + 1`` shares and ``threshold`` of them recover it.
    """

    round_id: int
    num_clients: int
    neighbours: int
    threshold: int
    dim: int
    clip: float
    scale: float
    modulus_bits: int
    max_weight: int
    authenticated: bool = False  # signed keys and a consistency check (malicious server)
    encoding: str = "quantize"  # or "words": clients bring their own words modulo 2^modulus_bits

    def __post_init__(self) -> None:
        if self.num_clients < 2:
            raise ValueError(f"num_clients must be >= 2, got {self.num_clients}")
        if not 1 <= self.neighbours <= self.num_clients - 1:
            raise ValueError(f"neighbours must be in 1..{self.num_clients - 1}, got {self.neighbours}")
        if not 2 <= self.threshold <= self.neighbours + 1:
            raise ValueError(f"threshold must be in 2..neighbours + 1 ({self.neighbours + 1}), "
                             f"got {self.threshold}")
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if not (math.isfinite(self.clip) and self.clip > 0 and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("clip and scale must be positive numbers")
        if not 2 <= self.modulus_bits <= 64 or self.max_weight < 1:
            raise ValueError("modulus_bits must be in 2..64 and max_weight >= 1")
        if self.encoding not in ("quantize", "words"):
            raise ValueError(f"encoding must be 'quantize' or 'words', got {self.encoding!r}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PeerKeys:
    client_id: int
    encryption_key: bytes
    mask_key: bytes

    def __post_init__(self) -> None:
        _check_key("encryption_key", self.encryption_key)
        _check_key("mask_key", self.mask_key)


@_wire.register(10)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdvertiseRequest:
    config: RoundConfig


@_wire.register(11)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdvertiseKeys:
    round_id: int
    encryption_key: bytes
    mask_key: bytes
    signature: bytes = b""  # Ed25519 over both keys, in authenticated rounds

    def __post_init__(self) -> None:
        _check_key("encryption_key", self.encryption_key)
        _check_key("mask_key", self.mask_key)
        if len(self.signature) not in (0, SIGNATURE_BYTES):
            raise ValueError(f"signature must be empty or {SIGNATURE_BYTES} bytes")


def _check_id_array(name: str, ids: np.ndarray) -> None:
    if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional int64 array")
    if ids.size and (ids.min() < 0 or np.unique(ids).size != ids.size):
        raise ValueError(f"{name} must hold distinct non-negative client ids")
    ids.setflags(write=False)


def _check_blob(name: str, blob: bytes, count: int, size: int) -> None:
    if len(blob) != count * size:
        raise ValueError(f"{name} must be {count} x {size} bytes, got {len(blob)}")


def ids(values: object) -> np.ndarray:
    """Client ids as the int64 array messages carry."""
    return np.array(values, dtype=np.int64).reshape(-1)


@_wire.register(12)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ShareKeysRequest:
    """The public keys of a client's neighbours, column by column."""

    round_id: int
    neighbour_ids: np.ndarray  # int64
    encryption_keys: bytes  # KEY_BYTES per neighbour
    mask_keys: bytes  # KEY_BYTES per neighbour
    signatures: bytes = b""  # SIGNATURE_BYTES per neighbour, in authenticated rounds

    def __post_init__(self) -> None:
        _check_id_array("neighbour_ids", self.neighbour_ids)
        _check_blob("encryption_keys", self.encryption_keys, self.neighbour_ids.size, KEY_BYTES)
        _check_blob("mask_keys", self.mask_keys, self.neighbour_ids.size, KEY_BYTES)
        if self.signatures:
            _check_blob("signatures", self.signatures, self.neighbour_ids.size, SIGNATURE_BYTES)

    def signature_of(self, index: int) -> bytes:
        return self.signatures[index * SIGNATURE_BYTES:(index + 1) * SIGNATURE_BYTES]

    def peers(self) -> dict[int, PeerKeys]:
        return {int(c): PeerKeys(client_id=int(c),
                                 encryption_key=self.encryption_keys[i * KEY_BYTES:(i + 1) * KEY_BYTES],
                                 mask_key=self.mask_keys[i * KEY_BYTES:(i + 1) * KEY_BYTES])
                for i, c in enumerate(self.neighbour_ids)}


@_wire.register(13)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ShareKeys:
    """Encrypted shares for each neighbour, and a commitment to the self-mask seed."""

    round_id: int
    self_mask_commitment: bytes
    receivers: np.ndarray  # int64
    ciphertexts: bytes  # CIPHERTEXT_BYTES per receiver, in the order of receivers

    def __post_init__(self) -> None:
        _check_key("self_mask_commitment", self.self_mask_commitment)
        _check_id_array("receivers", self.receivers)
        _check_blob("ciphertexts", self.ciphertexts, self.receivers.size, CIPHERTEXT_BYTES)


@_wire.register(14)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MaskedInputRequest:
    """The share ciphertexts addressed to a client by the neighbours still in the round."""

    round_id: int
    senders: np.ndarray  # int64
    ciphertexts: bytes  # CIPHERTEXT_BYTES per sender

    def __post_init__(self) -> None:
        _check_id_array("senders", self.senders)
        _check_blob("ciphertexts", self.ciphertexts, self.senders.size, CIPHERTEXT_BYTES)

    def by_sender(self) -> dict[int, bytes]:
        c = CIPHERTEXT_BYTES
        return {int(v): self.ciphertexts[i * c:(i + 1) * c] for i, v in enumerate(self.senders)}


@_wire.register(15)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MaskedInput:
    round_id: int
    masked: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.masked, np.ndarray) or self.masked.ndim != 1:
            raise ValueError("masked must be a one-dimensional array")
        if self.masked.dtype not in (np.uint16, np.uint32, np.uint64):
            raise ValueError(f"masked must be uint16, uint32 or uint64, got {self.masked.dtype}")


@_wire.register(16)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class UnmaskRequest:
    round_id: int
    survivors: np.ndarray  # int64
    dropped: np.ndarray  # int64
    signers: np.ndarray = dataclasses.field(default_factory=lambda: ids(()))  # int64
    signatures: bytes = b""  # SIGNATURE_BYTES per signer: their consistency signatures

    def __post_init__(self) -> None:
        _check_id_array("survivors", self.survivors)
        _check_id_array("dropped", self.dropped)
        _check_id_array("signers", self.signers)
        _check_blob("signatures", self.signatures, self.signers.size, SIGNATURE_BYTES)


@_wire.register(18)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ConsistencyRequest:
    """Authenticated rounds: the full survivor set, for every survivor to sign."""

    round_id: int
    survivors: np.ndarray  # int64

    def __post_init__(self) -> None:
        _check_id_array("survivors", self.survivors)


@_wire.register(19)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencySignature:
    round_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")


@_wire.register(17)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class UnmaskShares:
    """Self-mask shares of survivors and mask-key shares of dropped clients.

    Shares are ``(count, 16)`` uint32 arrays of field elements, row ``i`` belonging
    to the owner at position ``i`` of the matching owners array.
    """

    round_id: int
    self_mask_owners: np.ndarray  # int64
    self_mask_shares: np.ndarray  # uint32 (count, LIMBS)
    mask_key_owners: np.ndarray  # int64
    mask_key_shares: np.ndarray  # uint32 (count, LIMBS)

    def __post_init__(self) -> None:
        for kind in ("self_mask", "mask_key"):
            owners, shares = getattr(self, f"{kind}_owners"), getattr(self, f"{kind}_shares")
            _check_id_array(f"{kind}_owners", owners)
            if (not isinstance(shares, np.ndarray) or shares.dtype != np.uint32
                    or shares.shape != (owners.size, LIMBS)):
                raise ValueError(f"{kind}_shares must be uint32 of shape ({owners.size}, {LIMBS})")
