"""Cryptographic primitives of SecAgg+, all from ``cryptography``.

- X25519 key agreement (:class:`KeyPair`), with a deterministic ``from_private_bytes``.
- HKDF-SHA256 with a distinct label per use (:data:`LABELS`): every derived key is
  bound to its purpose, the round and the ordered pair of parties.
- AES-256-GCM for share ciphertexts, with associated data naming sender, receiver
  and round, so a ciphertext cannot be replayed to another party or round.
- Mask expansion: a 256-bit seed keys AES-256-CTR whose keystream is written straight
  into a preallocated buffer of ``uint16``/``uint32``/``uint64`` words (no per-call
  allocation, no copy) and added to or subtracted from an accumulator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from secagg._errors import InvalidCiphertext

__all__ = [
    "KeyPair",
    "LABELS",
    "derive",
    "seal",
    "open_sealed",
    "MaskExpander",
    "SEED_BYTES",
    "advertised_payload",
    "survivors_payload",
    "sign",
    "verify_signature",
]

SEED_BYTES = 32
KEY_BYTES = 32
NONCE_BYTES = 12
_ZERO_IV = bytes(16)
_PAIR = struct.Struct("<qqq")

# One label per use of HKDF; never reuse a label for another purpose.
LABELS = {
    "share_key": b"blindsum/v1/secagg/share-encryption-key",
    "pairwise_mask": b"blindsum/v1/secagg/pairwise-mask-seed",
    "self_mask": b"blindsum/v1/secagg/self-mask-seed",
    "self_mask_commitment": b"blindsum/v1/secagg/self-mask-commitment",
    "advertise_signature": b"blindsum/v1/secagg/advertised-keys",
    "consistency_signature": b"blindsum/v1/secagg/survivor-set",
}


def advertised_payload(round_id: int, client_id: int, encryption_key: bytes, mask_key: bytes) -> bytes:
    """What a client signs when it advertises its two public keys."""
    return LABELS["advertise_signature"] + _PAIR.pack(round_id, client_id, 0) + encryption_key + mask_key


def survivors_payload(round_id: int, survivors: np.ndarray) -> bytes:
    """What a survivor signs in the consistency check: the round and the sorted survivor set."""
    digest = hashlib.sha256(np.sort(survivors).astype("<i8").tobytes()).digest()
    return LABELS["consistency_signature"] + _PAIR.pack(round_id, survivors.size, 0) + digest


def verify_signature(public_key: bytes, signature: bytes, payload: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``payload`` under ``public_key``.

    Used only where a bad signature is an expected, handled outcome (a peer to exclude).
    """
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign(identity: Ed25519PrivateKey, payload: bytes) -> bytes:
    return identity.sign(payload)


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class KeyPair:
    """An X25519 key pair. ``repr`` never shows the private key."""

    private: X25519PrivateKey
    public_bytes: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private_key(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> KeyPair:
        """Raises ``ValueError`` unless ``data`` is 32 bytes."""
        if len(data) != 32:
            raise ValueError(f"X25519 private key must be 32 bytes, got {len(data)}")
        return cls.from_private_key(X25519PrivateKey.from_private_bytes(bytes(data)))

    @classmethod
    def from_private_key(cls, key: X25519PrivateKey) -> KeyPair:
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private=key, public_bytes=pub)

    def private_bytes(self) -> bytes:
        return self.private.private_bytes_raw()

    def exchange(self, peer_public: bytes | X25519PublicKey) -> bytes:
        """The X25519 shared secret with ``peer_public`` (raw bytes or a parsed key).

        Raises:
            ValueError: the peer key is malformed or a low-order point.
        """
        if isinstance(peer_public, bytes):
            peer_public = X25519PublicKey.from_public_bytes(peer_public)
        return self.private.exchange(peer_public)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public_bytes.hex()[:16]}...)"


def hkdf_sha256(secret: bytes, *, info: bytes, length: int = KEY_BYTES, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def derive(purpose: str, secret: bytes, *, round_id: int, a: int = 0, b: int = 0) -> bytes:
    """A 32-byte key for ``purpose`` bound to the round and the (ordered) pair ``a, b``."""
    return hkdf_sha256(secret, info=LABELS[purpose] + _PAIR.pack(round_id, a, b))


def _aad(round_id: int, sender: int, receiver: int) -> bytes:
    return b"blindsum/v1/secagg/share" + _PAIR.pack(round_id, sender, receiver)


def seal(key: bytes, plaintext: bytes, *, round_id: int, sender: int, receiver: int) -> bytes:
    """AES-256-GCM encrypt; a fresh random nonce is prepended to the ciphertext."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(round_id, sender, receiver))


def open_sealed(key: bytes, data: bytes, *, round_id: int, sender: int, receiver: int) -> bytes:
    """Decrypt what :func:`seal` produced for exactly this round, sender and receiver.

    Raises:
        InvalidCiphertext: tampered, truncated, or sealed for another party or round
            (the error names ``sender``).
    """
    if len(data) < NONCE_BYTES + 16:
        raise InvalidCiphertext(sender, f"share ciphertext too short ({len(data)} bytes)")
    try:
        return AESGCM(key).decrypt(
            data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(round_id, sender, receiver)
        )
    except InvalidTag:
        raise InvalidCiphertext(sender, f"share ciphertext for client {receiver} failed authentication") from None


class MaskExpander:
    """Expands 256-bit seeds into masks of ``dim`` words and adds them to accumulators.

    One expander owns one preallocated buffer; ``add``/``subtract`` write the AES-256-CTR
    keystream of the seed into it and fold it into ``acc`` with NumPy's wrap-around
    arithmetic (reduction modulo 2^(8 * itemsize) for free).
    """

    def __init__(self, dim: int, dtype: np.dtype | type = np.uint32) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64)):
            raise ValueError(f"dtype must be uint16, uint32 or uint64, got {self.dtype}")
        self.dim = dim
        self._buf = np.empty(dim, dtype=self.dtype)
        self._bytes = self._buf.view(np.uint8).data
        self._zeros = bytes(self._bytes.nbytes)

    def expand(self, seed: bytes) -> np.ndarray:
        """The mask of ``seed``; a view of the internal buffer, valid until the next call."""
        if len(seed) != SEED_BYTES:
            raise ValueError(f"mask seed must be {SEED_BYTES} bytes, got {len(seed)}")
        enc = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_IV)).encryptor()
        enc.update_into(self._zeros, self._bytes)
        return self._buf

    def add(self, acc: np.ndarray, seed: bytes) -> None:
        np.add(acc, self.expand(seed), out=acc)

    def subtract(self, acc: np.ndarray, seed: bytes) -> None:
        np.subtract(acc, self.expand(seed), out=acc)
