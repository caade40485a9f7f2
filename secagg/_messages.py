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
    "SHARE_BYTES",
    "KEY_BYTES",
]

KEY_BYTES = 32
SHARE_BYTES = 64  # sixteen 31-bit field elements as little-endian uint32


def _check_key(name: str, key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")


def _check_ids(name: str, ids: tuple[int, ...]) -> None:
    if any(i < 0 for i in ids):
        raise ValueError(f"{name} contains a negative client id")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name} contains a client id twice")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoundConfig:
    """What every client must know to take part in a round (sent in the first request)."""

    round_id: int
    num_clients: int
    neighbours: int
    threshold: int
    dim: int
    clip: float
    scale: float
    modulus_bits: int
    max_weight: int

    def __post_init__(self) -> None:
        if self.num_clients < 2:
            raise ValueError(f"num_clients must be >= 2, got {self.num_clients}")
        if not 1 <= self.neighbours <= self.num_clients - 1:
            raise ValueError(f"neighbours must be in 1..{self.num_clients - 1}, got {self.neighbours}")
        if not 1 <= self.threshold <= self.neighbours:
            raise ValueError(f"threshold must be in 1..neighbours ({self.neighbours}), got {self.threshold}")
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if not (math.isfinite(self.clip) and self.clip > 0 and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("clip and scale must be positive numbers")
        if not 2 <= self.modulus_bits <= 64 or self.max_weight < 1:
            raise ValueError("modulus_bits must be in 2..64 and max_weight >= 1")


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

    def __post_init__(self) -> None:
        _check_key("encryption_key", self.encryption_key)
        _check_key("mask_key", self.mask_key)


@_wire.register(12)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ShareKeysRequest:
    round_id: int
    neighbours: tuple[PeerKeys, ...]

    def __post_init__(self) -> None:
        _check_ids("neighbours", tuple(p.client_id for p in self.neighbours))


@_wire.register(13)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ShareKeys:
    """Encrypted shares for each neighbour, and a commitment to the self-mask seed."""

    round_id: int
    self_mask_commitment: bytes
    ciphertexts: tuple[tuple[int, bytes], ...]  # (receiver, ciphertext)

    def __post_init__(self) -> None:
        _check_key("self_mask_commitment", self.self_mask_commitment)
        _check_ids("ciphertext receivers", tuple(r for r, _ in self.ciphertexts))


@_wire.register(14)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MaskedInputRequest:
    round_id: int
    ciphertexts: tuple[tuple[int, bytes], ...]  # (sender, ciphertext addressed to you)

    def __post_init__(self) -> None:
        _check_ids("ciphertext senders", tuple(s for s, _ in self.ciphertexts))


@_wire.register(15)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MaskedInput:
    round_id: int
    masked: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.masked, np.ndarray) or self.masked.ndim != 1:
            raise ValueError("masked must be a one-dimensional array")
        if self.masked.dtype not in (np.uint16, np.uint32, np.uint64):
            raise ValueError(f"masked must be uint16, uint32 or uint64, got {self.masked.dtype}")


@_wire.register(16)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UnmaskRequest:
    round_id: int
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_ids("survivors", self.survivors)
        _check_ids("dropped", self.dropped)


@_wire.register(17)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UnmaskShares:
    round_id: int
    self_mask_shares: tuple[tuple[int, bytes], ...]  # (owner, share) for survivors
    mask_key_shares: tuple[tuple[int, bytes], ...]  # (owner, share) for dropped

    def __post_init__(self) -> None:
        for name, pairs in (("self_mask_shares", self.self_mask_shares),
                            ("mask_key_shares", self.mask_key_shares)):
            _check_ids(name, tuple(o for o, _ in pairs))
            if any(len(s) != SHARE_BYTES for _, s in pairs):
                raise ValueError(f"{name} must be {SHARE_BYTES} bytes each")
