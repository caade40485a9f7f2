"""Wire messages of the ``ckks`` backend (tags 40-43; 44-45 are its params and keys)."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from secagg import _wire

__all__ = ["CKKSRequest", "CKKSUpdate", "CKKSDecryptRequest", "CKKSDecryptReply", "Stage"]


@_wire.register(40)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSRequest:
    """Server -> every sampled client: encrypt your update under key ``key_id``."""

    round_id: int
    dim: int
    n_clients: int
    key_id: bytes


@_wire.register(41)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSUpdate:
    """Client -> server: the packed weighted update, one ciphertext per N/2 floats."""

    round_id: int
    key_id: bytes
    chunks: tuple[bytes, ...]


@_wire.register(42)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSDecryptRequest:
    """Server -> one key holder: decrypt this sum of ``contributors``' updates."""

    round_id: int
    dim: int
    key_id: bytes
    contributors: tuple[int, ...]
    chunks: tuple[bytes, ...]


@_wire.register(43)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSDecryptReply:
    """Key holder -> server: the decrypted packed sum (``dim + 1`` floats)."""

    round_id: int
    values: np.ndarray


class Stage(enum.Enum):
    ENCRYPTED_INPUT = "encrypted_input"
    DECRYPT = "decrypt"
    DONE = "done"
