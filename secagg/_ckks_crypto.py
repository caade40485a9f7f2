"""CKKS parameters, keys and the ciphertext operations of the ``ckks`` backend.

The computation is a sum of fresh ciphertexts: no multiplication, no rescaling, no
rotation. So the modulus chain holds **one data prime** (every extra prime costs
about 16 bytes per float on the wire) plus the special prime SEAL needs for the
relinearisation keys TenSEAL insists on generating; ciphertexts live at the data
level only. With the defaults (N = 4096, primes of 60 and 40 bits, 100 bits in
all, under the 109-bit bound of the HE security standard for 128-bit security at
N = 4096) a ciphertext carries 2048 floats in about 65.7 kB: 32.07 bytes per float.

Each client packs ``[(w/S) * x, w/S]`` (``S`` is ``weight_scale``) into vectors of
N/2 slots, so the weight travels encrypted too and the coordinator learns only the
total. CKKS is approximate: a fresh ciphertext's error is about ``2^12 / 2^scale_bits``
per slot. The sum must stay under the *headroom* ``2^(data_prime_bits - 2 - scale_bits)``
in every slot or it wraps around silently, so each client checks before sending
that ``n_clients`` copies of its own largest slot would fit.

TenSEAL is imported lazily: ``import secagg`` works without it, and the first use
raises :class:`MissingExtraError` naming the ``ckks`` extra.

TenSEAL cannot emit *seeded* ciphertexts (SEAL keeps the seed of a symmetric
encryption only in a ``Serializable<Ciphertext>``, which TenSEAL does not expose),
so the wire size is the full ``(c0, c1)`` pair, compressed by SEAL's zstd.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

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
    "require_tenseal",
    "pack",
    "unpack",
    "chunk_sizes",
    "Engine",
]

# Largest total coefficient modulus (bits) for 128-bit classical security,
# HomomorphicEncryption.org standard (2018), ternary secret; SEAL's own table.
_MAX_MODULUS_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
_EXTRA_HINT = "pip install 'blindsum[ckks]'"


class MissingExtraError(SecAggError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class CKKSCiphertextError(CryptoError):
    """A client's CKKS ciphertext was rejected; ``chunk`` is its index (or ``None``)."""

    def __init__(self, peer: Peer, reason: str, *, chunk: int | None = None) -> None:
        where = f" (chunk {chunk})" if chunk is not None else ""
        super().__init__(peer, reason + where)
        self.chunk = chunk


class CKKSKeyMismatch(CKKSCiphertextError):
    """The ciphertext was made under another key or another set of parameters."""


class MalformedCKKSCiphertext(CKKSCiphertextError):
    """The bytes do not parse as a fresh ciphertext of this context (corrupt or truncated)."""


class CKKSLengthMismatch(CKKSCiphertextError):
    """Wrong number of ciphertexts, or a ciphertext holding the wrong number of slots."""


def require_tenseal() -> Any:
    """Return the ``tenseal`` module.

    Raises:
        MissingExtraError: TenSEAL is not installed.
    """
    try:
        import tenseal
    except ImportError as exc:
        raise MissingExtraError(
            f"the ckks backend needs TenSEAL, which is not installed: {_EXTRA_HINT}"
        ) from exc
    return tenseal


@_wire.register(44)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSParams:
    """CKKS parameters of the ``ckks`` backend (defaults: 128-bit security, 32 B/float).

    ``weight_scale`` divides every weight before encryption (raise it when the total
    weight would exceed :attr:`headroom`); ``min_contributors`` is the fewest clients
    a key holder agrees to decrypt a sum of.
    """

    poly_modulus_degree: int = 4096
    data_prime_bits: int = 60
    special_prime_bits: int = 40
    scale_bits: int = 40
    weight_scale: float = 1.0
    min_contributors: int = 2

    def __post_init__(self) -> None:
        n = self.poly_modulus_degree
        if n not in _MAX_MODULUS_BITS_128:
            raise ConfigurationError(
                f"poly_modulus_degree must be one of {sorted(_MAX_MODULUS_BITS_128)}, got {n}"
            )
        for name in ("data_prime_bits", "special_prime_bits"):
            bits = getattr(self, name)
            if not 20 <= bits <= 60:
                raise ConfigurationError(f"{name} must be in 20..60 (SEAL's limit), got {bits}")
        total = self.data_prime_bits + self.special_prime_bits
        if total > _MAX_MODULUS_BITS_128[n]:
            raise ConfigurationError(
                f"data_prime_bits + special_prime_bits = {total} exceeds the 128-bit security "
                f"bound of {_MAX_MODULUS_BITS_128[n]} bits for poly_modulus_degree {n}"
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
        """Largest absolute value a slot of the *sum* may reach without wrapping around."""
        return float(2 ** (self.data_prime_bits - 2 - self.scale_bits))


@_wire.register(45)
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CKKSKeys:
    """Serialised TenSEAL contexts: the public one, and the secret one on key holders.

    Make a fresh pair with :meth:`generate`; the constructor (or ``secagg.decode`` of
    ``secagg.encode(keys)``) is its deterministic twin. :meth:`public` is what the
    coordinator and the clients that are not key holders receive.
    """

    params: CKKSParams
    public_context: bytes
    secret_context: bytes | None = None

    def __post_init__(self) -> None:
        if not self.public_context:
            raise ValueError("public_context must not be empty")
        if self.secret_context is not None and not self.secret_context:
            raise ValueError("secret_context must be None or non-empty")

    @classmethod
    def generate(cls, params: CKKSParams | None = None) -> CKKSKeys:
        """A new key pair (secret key from SEAL's OS-seeded generator).

        Raises:
            MissingExtraError: TenSEAL is not installed.
        """
        params = params or CKKSParams()
        ts = require_tenseal()
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            params.poly_modulus_degree,
            coeff_mod_bit_sizes=[params.data_prime_bits, params.special_prime_bits],
            n_threads=1,
        )
        ctx.global_scale = params.scale
        flags = {"save_relin_keys": False, "save_galois_keys": False}
        return cls(
            params=params,
            public_context=ctx.serialize(save_secret_key=False, **flags),
            secret_context=ctx.serialize(save_secret_key=True, **flags),
        )

    @property
    def key_id(self) -> bytes:
        """16 bytes naming the key pair (SHA-256 of the public context)."""
        return hashlib.sha256(self.public_context).digest()[:16]

    @property
    def has_secret(self) -> bool:
        return self.secret_context is not None

    def public(self) -> CKKSKeys:
        """The same keys without the secret context."""
        return CKKSKeys(params=self.params, public_context=self.public_context)

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


class Engine:
    """A loaded TenSEAL context: encrypt, check-and-load, add, decrypt.

    ``secret=True`` loads the secret context (raises ``ValueError`` if ``keys`` has
    none); otherwise the public one, which can add but not decrypt.
    """

    def __init__(self, keys: CKKSKeys, *, secret: bool) -> None:
        self._ts = require_tenseal()
        blob = keys.secret_context if secret else keys.public_context
        if blob is None:
            raise ValueError("keys must hold a secret context to decrypt")
        self.params = keys.params
        self.key_id = keys.key_id
        self._ctx = self._ts.context_from(blob, n_threads=1)
        if self._ctx.is_private() != secret:
            raise ConfigurationError("the serialised context does not match its role")
        self._ctx.global_scale = self.params.scale
        seal = self._ctx.seal_context().data
        self._data_parms_id = list(seal.first_parms_id())
        if seal.first_context_data().total_coeff_modulus_bit_count() != self.params.data_prime_bits:
            raise ConfigurationError("the serialised context does not match its CKKSParams")

    def encrypt(self, packed: np.ndarray) -> tuple[bytes, ...]:
        """Encrypt a packed vector, one serialised ciphertext per N/2 slots."""
        slots = self.params.slots
        return tuple(
            self._ts.ckks_vector(self._ctx, packed[i : i + slots]).serialize()
            for i in range(0, packed.shape[0], slots)
        )

    def load(self, chunks: tuple[bytes, ...], length: int, *, peer: Peer) -> list[Any]:
        """Parse and check the ciphertexts of a packed vector of ``length`` floats.

        Raises:
            CKKSLengthMismatch: wrong number of chunks or of slots in one.
            MalformedCKKSCiphertext: a chunk does not parse under this context
                (corrupt, truncated, other parameters), or is not a fresh ciphertext
                at this context's data level and scale.
        """
        sizes = chunk_sizes(length, self.params.slots)
        if len(chunks) != len(sizes):
            raise CKKSLengthMismatch(peer, f"{len(chunks)} ciphertexts, expected {len(sizes)}")
        pairs = enumerate(zip(chunks, sizes, strict=True))
        return [self._load_one(data, size, peer, i) for i, (data, size) in pairs]

    def _load_one(self, data: bytes, size: int, peer: Peer, index: int) -> Any:
        try:
            vec = self._ts.ckks_vector_from(self._ctx, data)
        except Exception as exc:  # protobuf, zstd or SEAL validation (parms_id, data range)
            raise MalformedCKKSCiphertext(
                peer, f"not a ciphertext of this context (corrupt, truncated or other "
                f"parameters): {exc}", chunk=index,
            ) from None
        cts = vec.ciphertext()
        if len(cts) != 1:
            raise MalformedCKKSCiphertext(peer, f"{len(cts)} SEAL ciphertexts in one", chunk=index)
        ct = cts[0]
        if list(ct.parms_id()) != self._data_parms_id or ct.size() != 2 or not ct.is_ntt_form():
            raise MalformedCKKSCiphertext(
                peer, "not a fresh ciphertext at the data level", chunk=index
            )
        if ct.scale != self.params.scale:
            raise MalformedCKKSCiphertext(
                peer, f"scale 2^{math.log2(ct.scale):.1f}, expected 2^{self.params.scale_bits}",
                chunk=index,
            )
        if vec.size() != size:
            raise CKKSLengthMismatch(peer, f"{vec.size()} slots, expected {size}", chunk=index)
        return vec

    @staticmethod
    def add_into(acc: list[Any] | None, vectors: list[Any]) -> list[Any]:
        """Add ``vectors`` into the running sum ``acc`` (``None`` starts one)."""
        if acc is None:
            return vectors
        for a, v in zip(acc, vectors, strict=True):
            a.add_(v)
        return acc

    @staticmethod
    def serialize(vectors: list[Any]) -> tuple[bytes, ...]:
        return tuple(v.serialize() for v in vectors)

    def decrypt(self, vectors: list[Any]) -> np.ndarray:
        """Decrypt and concatenate (needs the secret context)."""
        return np.concatenate([np.asarray(v.decrypt(), dtype=np.float64) for v in vectors])
