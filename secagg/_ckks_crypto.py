"""CKKS parameters, keys, errors and packing of the ``ckks`` backend (no TenSEAL needed).

The computation is a sum of fresh ciphertexts: no multiplication, no rescaling, no
rotation, no key switching. So the modulus chain is **one prime** (each prime costs
16 bytes per float in a seeded ciphertext, 32 in a public-key one) and there are no
relinearisation or Galois keys at all. With the defaults (N = 4096, one 60-bit
prime, far under the 109-bit bound of the HE security standard for 128-bit security
at N = 4096) a ciphertext carries 2048 floats.

Each client packs ``[(w/S) * x, w/S]`` (``S`` is ``weight_scale``) into vectors of
N/2 slots, so the weight travels encrypted too and the coordinator learns only the
total. CKKS is approximate: a fresh ciphertext's error is about ``2^3..2^12 /
2^scale_bits`` per slot (secret-key / public-key encryption). The sum must stay under
the *headroom* ``2^(data_prime_bits - 2 - scale_bits)`` in every slot or it wraps
around silently, so each client checks before sending that ``n_clients`` copies of
its own largest slot would fit.

The SEAL operations live in :mod:`secagg._ckks_seal`, which imports TenSEAL lazily:
``import secagg`` works without it, and the first use raises :class:`MissingExtraError`
naming the ``ckks`` extra.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from secagg import _wire
from secagg._errors import ConfigurationError, CryptoError, Peer, SecAggError

__all__ = [
    "CKKSParams",
    "CKKSKeys",
    "CKKSCiphertextError",
    "CKKSKeyMismatch",
    "MalformedCKKSCiphertext",
    "CKKSLengthMismatch",
    "MissingExtraError",
    "pack",
    "unpack",
    "chunk_sizes",
    "EXTRA_HINT",
]

# Largest total coefficient modulus (bits) for 128-bit classical security,
# HomomorphicEncryption.org standard (2018), ternary secret; SEAL's own table.
MAX_MODULUS_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
EXTRA_HINT = "pip install 'blindsum[ckks]'"


class MissingExtraError(SecAggError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class CKKSCiphertextError(CryptoError):
    """A client's CKKS ciphertext was rejected; ``chunk`` is its index (or ``None``)."""

    def __init__(self, peer: Peer, reason: str, *, chunk: int | None = None) -> None:
        where = f" (chunk {chunk})" if chunk is not None else ""
        super().__init__(peer, reason + where)
        self.chunk = chunk


class CKKSKeyMismatch(CKKSCiphertextError):
    """The update names another key pair than this round's."""


class MalformedCKKSCiphertext(CKKSCiphertextError):
    """The bytes are not a fresh ciphertext of this context (corrupt, truncated, other
    parameters, wrong level or scale)."""


class CKKSLengthMismatch(CKKSCiphertextError):
    """Wrong number of ciphertexts for the round's dimension, or a decrypted sum of the
    wrong length."""


@_wire.register(44)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSParams:
    """CKKS parameters of the ``ckks`` backend (defaults: 128-bit security, 16 B/float).

    ``weight_scale`` divides every weight before encryption (raise it when the total
    weight would exceed :attr:`headroom`); ``min_contributors`` is the fewest clients
    a key holder agrees to decrypt a sum of.
    """

    poly_modulus_degree: int = 4096
    data_prime_bits: int = 60
    scale_bits: int = 40
    weight_scale: float = 1.0
    min_contributors: int = 2

    def __post_init__(self) -> None:
        n = self.poly_modulus_degree
        if n not in MAX_MODULUS_BITS_128 or n < 2048:
            raise ConfigurationError(
                f"poly_modulus_degree must be one of {sorted(MAX_MODULUS_BITS_128)[1:]}, got {n}"
            )
        limit = min(60, MAX_MODULUS_BITS_128[n])  # 60: SEAL's largest prime
        if not 30 <= self.data_prime_bits <= limit:
            raise ConfigurationError(
                f"data_prime_bits must be in 30..{limit} (128-bit security bound at "
                f"poly_modulus_degree {n}, SEAL's 60-bit prime limit), got {self.data_prime_bits}"
            )
        if not 20 <= self.scale_bits <= self.data_prime_bits - 4:
            raise ConfigurationError(
                f"scale_bits must be in 20..data_prime_bits-4 = {self.data_prime_bits - 4}, "
                f"got {self.scale_bits}"
            )
        if not (math.isfinite(self.weight_scale) and self.weight_scale > 0):
            raise ConfigurationError(f"weight_scale must be positive, got {self.weight_scale}")
        if self.min_contributors < 1:
            raise ConfigurationError(f"min_contributors must be >= 1, got {self.min_contributors}")

    @property
    def slots(self) -> int:
        """Floats per ciphertext (N/2)."""
        return self.poly_modulus_degree // 2

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def headroom(self) -> float:
        """Largest absolute value a slot of the *sum* may reach without wrapping around.

        The prime q has ``data_prime_bits`` bits, so ``q/2 >= 2^(bits-2)``.
        """
        return float(2 ** (self.data_prime_bits - 2 - self.scale_bits))


@_wire.register(45)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSKeys:
    """A CKKS key pair as SEAL bytes: the public key, and the secret key on key holders.

    Make a fresh pair with :meth:`generate`; the constructor (or ``secagg.decode`` of
    ``secagg.encode(keys)``) is its deterministic twin. :meth:`public` is what the
    coordinator and the clients that are not key holders receive.
    """

    params: CKKSParams
    public_key: bytes
    secret_key: bytes | None = None

    def __post_init__(self) -> None:
        if not self.public_key:
            raise ValueError("public_key must not be empty")
        if self.secret_key is not None and not self.secret_key:
            raise ValueError("secret_key must be None or non-empty")

    @classmethod
    def generate(cls, params: CKKSParams | None = None) -> CKKSKeys:
        """A new key pair (from SEAL's OS-seeded generator).

        Raises:
            MissingExtraError: TenSEAL is not installed.
        """
        from secagg._ckks_seal import generate_keys

        params = params or CKKSParams()
        public_key, secret_key = generate_keys(params)
        return cls(params=params, public_key=public_key, secret_key=secret_key)

    @property
    def key_id(self) -> bytes:
        """16 bytes naming the key pair (SHA-256 of the public key, which names its parameters)."""
        return hashlib.sha256(self.public_key).digest()[:16]

    @property
    def has_secret(self) -> bool:
        return self.secret_key is not None

    def public(self) -> CKKSKeys:
        """The same keys without the secret key."""
        return CKKSKeys(params=self.params, public_key=self.public_key)

    def __repr__(self) -> str:  # never print key material
        kind = "secret" if self.has_secret else "public"
        return f"CKKSKeys({kind}, key_id={self.key_id.hex()}, params={self.params!r})"


def chunk_sizes(length: int, slots: int) -> tuple[int, ...]:
    """How many slots each ciphertext of a packed vector of ``length`` floats holds."""
    full, rest = divmod(length, slots)
    return (slots,) * full + ((rest,) if rest else ())


def pack(vector: np.ndarray, weight: float, weight_scale: float) -> np.ndarray:
    """``[(w/S) * x, w/S]``: the weighted update with the weight in the last slot."""
    w = weight / weight_scale
    out = np.empty(vector.shape[0] + 1)
    np.multiply(vector, w, out=out[:-1])
    out[-1] = w
    return out


def unpack(values: np.ndarray, weight_scale: float) -> tuple[np.ndarray, float]:
    """Invert :func:`pack` on a decrypted sum: ``(sum(w*x), sum(w))``."""
    return values[:-1] * weight_scale, float(values[-1]) * weight_scale
