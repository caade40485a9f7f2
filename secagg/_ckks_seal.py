"""SEAL operations of the ``ckks`` backend, through ``tenseal.sealapi`` (imported lazily).

Why SEAL directly and not TenSEAL's ``CKKSVector``: TenSEAL always generates
relinearisation keys, so it needs a second (special) prime, and its symmetric mode
encrypts into a plain ``Ciphertext``, which drops the seed. Through the SEAL binding
that TenSEAL ships, a key holder's ``encrypt_symmetric`` returns a
``Serializable<Ciphertext>`` whose second polynomial is replaced by the 64-byte seed
that generated it: **16 bytes per float** instead of 32 (public-key encryption, used by
clients without the secret key). The chain is one prime and needs no key switching.

``tenseal.sealapi`` saves and loads only through a file path, so :class:`_SealBytes`
moves bytes through one in-memory file (``memfd``; a private temporary file where
there is no ``memfd_create`` or no ``/proc``). Nothing touches the disk on Linux.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import weakref
from typing import Any

import numpy as np

from secagg._ckks_crypto import (
    EXTRA_HINT,
    CKKSKeys,
    CKKSLengthMismatch,
    CKKSParams,
    MalformedCKKSCiphertext,
    MissingExtraError,
    chunk_sizes,
)
from secagg._errors import ConfigurationError, Peer

__all__ = ["require_sealapi", "generate_keys", "Engine"]

# SEALHeader: uint16 magic 0xA15E, uint8 header size, uint8 x2 version, uint8 compression
# mode, uint16 reserved, uint64 size of the whole serialised object (header included).
_SEAL_HEADER = struct.Struct("<HBBBBHQ")


def require_sealapi() -> Any:
    """Return ``tenseal.sealapi``.

    Raises:
        MissingExtraError: TenSEAL is not installed.
    """
    try:
        import tenseal.sealapi as sealapi
    except ImportError as exc:
        raise MissingExtraError(
            f"the ckks backend needs TenSEAL, which is not installed: {EXTRA_HINT}"
        ) from exc
    return sealapi


class _SealBytes:
    """SEAL objects to and from ``bytes`` through one private in-memory file."""

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("blindsum-seal", os.MFD_CLOEXEC)
            if os.path.exists(f"/proc/self/fd/{fd}"):
                self._fd, self._path = fd, f"/proc/self/fd/{fd}"
                weakref.finalize(self, os.close, fd)
                return
            os.close(fd)  # pragma: no cover - no /proc mounted
        self._fd, self._path = tempfile.mkstemp(prefix="blindsum-seal-")  # pragma: no cover
        weakref.finalize(self, _close_and_unlink, self._fd, self._path)  # pragma: no cover

    def dump(self, obj: Any) -> bytes:
        obj.save(self._path)  # SEAL opens the path for writing, truncating it
        return os.pread(self._fd, os.fstat(self._fd).st_size, 0)

    def load(self, obj: Any, data: bytes, *context: Any) -> Any:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        obj.load(*context, self._path)
        return obj


def _close_and_unlink(fd: int, path: str) -> None:  # pragma: no cover - not Linux
    os.close(fd)
    os.unlink(path)


def _context(sa: Any, params: CKKSParams) -> Any:
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(params.poly_modulus_degree)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(params.poly_modulus_degree,
                                                   [params.data_prime_bits]))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
    if not ctx.parameters_set():
        raise ConfigurationError(f"SEAL rejects {params!r}: {ctx.parameters_error_message()}")
    return ctx


def generate_keys(params: CKKSParams) -> tuple[bytes, bytes]:
    """``(public_key, secret_key)`` as SEAL bytes, for ``params``."""
    sa = require_sealapi()
    ctx = _context(sa, params)
    keygen = sa.KeyGenerator(ctx)
    public_key = sa.PublicKey()
    keygen.create_public_key(public_key)
    io = _SealBytes()
    return io.dump(public_key), io.dump(keygen.secret_key())


class Engine:
    """Encrypt, check-and-load, add and decrypt packed vectors under one key pair.

    ``secret=True`` loads the secret key: it then encrypts seeded (secret-key)
    ciphertexts and can decrypt. Otherwise only the public key is loaded: public-key
    encryption and addition, no decryption.

    Raises:
        ValueError: ``secret=True`` but ``keys`` holds no secret key.
        ConfigurationError: the key bytes do not belong to ``keys.params``.
    """

    def __init__(self, keys: CKKSKeys, *, secret: bool) -> None:
        if secret and keys.secret_key is None:
            raise ValueError("keys must hold a secret key to decrypt")
        sa = self._sa = require_sealapi()
        self.params = keys.params
        self.key_id = keys.key_id
        self._io = _SealBytes()
        self._ctx = _context(sa, keys.params)
        self._parms_id = list(self._ctx.first_parms_id())
        try:
            public_key = self._io.load(sa.PublicKey(), keys.public_key, self._ctx)
            secret_key = (
                self._io.load(sa.SecretKey(), keys.secret_key, self._ctx)
                if secret and keys.secret_key is not None else None
            )
        except Exception as exc:  # SEAL: invalid for these parameters
            raise ConfigurationError(f"the keys do not match {keys.params!r}: {exc}") from None
        self._secret = secret_key is not None
        self._encryptor = sa.Encryptor(self._ctx, secret_key if self._secret else public_key)
        self._decryptor = sa.Decryptor(self._ctx, secret_key) if self._secret else None
        self._encoder = sa.CKKSEncoder(self._ctx)
        self._evaluator = sa.Evaluator(self._ctx)

    def encrypt(self, packed: np.ndarray) -> tuple[bytes, ...]:
        """Encrypt a packed vector, one serialised ciphertext per N/2 slots."""
        sa, slots, scale = self._sa, self.params.slots, self.params.scale
        out = []
        for i in range(0, packed.shape[0], slots):
            plain = sa.Plaintext()
            self._encoder.encode(packed[i : i + slots].tolist(), scale, plain)
            if self._secret:
                out.append(self._io.dump(self._encryptor.encrypt_symmetric(plain)))
            else:
                ct = sa.Ciphertext()
                self._encryptor.encrypt(plain, ct)
                out.append(self._io.dump(ct))
        return tuple(out)

    def load(self, chunks: tuple[bytes, ...], length: int, *, peer: Peer) -> list[Any]:
        """Parse and check the ciphertexts of a packed vector of ``length`` floats.

        Raises:
            CKKSLengthMismatch: not the number of ciphertexts ``length`` needs.
            MalformedCKKSCiphertext: a chunk does not parse under this context
                (corrupt, truncated, trailing bytes, other parameters), or is not a fresh ciphertext
                at this context's level and scale.
        """
        expected = len(chunk_sizes(length, self.params.slots))
        if len(chunks) != expected:
            raise CKKSLengthMismatch(peer, f"{len(chunks)} ciphertexts, expected {expected}")
        return [self._load_one(data, peer, i) for i, data in enumerate(chunks)]

    def _load_one(self, data: bytes, peer: Peer, index: int) -> Any:
        # SEAL's header (magic, header size, version, compression, reserved, total size)
        # states the object's length; SEAL itself ignores whatever follows it.
        if len(data) >= _SEAL_HEADER.size:
            size = _SEAL_HEADER.unpack_from(data)[-1]
            if size != len(data):
                raise MalformedCKKSCiphertext(
                    peer, f"{len(data)} bytes, but the ciphertext's header says {size}",
                    chunk=index,
                )
        try:
            ct = self._io.load(self._sa.Ciphertext(), data, self._ctx)
        except Exception as exc:  # SEAL header, zstd, or is_valid_for (parms_id, data range)
            raise MalformedCKKSCiphertext(
                peer, f"not a ciphertext of this context (corrupt, truncated or other "
                f"parameters): {exc}", chunk=index,
            ) from None
        if list(ct.parms_id()) != self._parms_id or ct.size() != 2 or not ct.is_ntt_form():
            raise MalformedCKKSCiphertext(peer, "not a fresh ciphertext of this context",
                                          chunk=index)
        if ct.scale != self.params.scale:
            raise MalformedCKKSCiphertext(
                peer, f"scale 2^{math.log2(ct.scale):.1f}, expected 2^{self.params.scale_bits}",
                chunk=index,
            )
        return ct

    def add_into(self, acc: list[Any] | None, ciphertexts: list[Any]) -> list[Any]:
        """Add ``ciphertexts`` into the running sum ``acc`` (``None`` starts one)."""
        if acc is None:
            return ciphertexts
        for a, c in zip(acc, ciphertexts, strict=True):
            self._evaluator.add_inplace(a, c)
        return acc

    def multiply_scalar(
        self, ciphertexts: list[Any], factor: float, *, scale_bits: int = 0
    ) -> list[Any]:
        """Multiply ``ciphertexts`` in place by the plaintext scalar ``factor``; no secret
        key is needed (the coordinator's public context can do it).

        With ``scale_bits=0`` the factor must be an integer: it is encoded exactly at
        scale 1, the ciphertexts keep the round's scale, and a key holder's
        :meth:`load` accepts the result. A fractional factor is encoded at scale
        ``2^scale_bits`` (relative precision about ``2^-scale_bits``); the result's scale
        is then ``2^(params.scale_bits + scale_bits)``, which costs ``scale_bits`` bits of
        headroom (the one-prime chain cannot rescale) and is no longer a fresh
        ciphertext at the round's scale: decrypt it with :meth:`decrypt` directly.
        ``|factor|`` times the largest slot must stay within the remaining headroom.

        Raises:
            ValueError: ``factor`` is not finite, or not an integer with
                ``scale_bits=0``; ``scale_bits`` is negative or leaves no headroom.
        """
        factor = float(factor)
        if not math.isfinite(factor):
            raise ValueError(f"factor must be finite, got {factor}")
        room = self.params.data_prime_bits - 2 - self.params.scale_bits
        if not (isinstance(scale_bits, int) and 0 <= scale_bits < room):
            raise ValueError(f"scale_bits must be an integer in 0..{room - 1} "
                             f"(data_prime_bits - 2 - scale_bits - 1), got {scale_bits!r}")
        if scale_bits == 0 and not factor.is_integer():
            raise ValueError(f"factor must be an integer with scale_bits=0, got {factor}; "
                             "give scale_bits > 0 for a fractional factor")
        plain = self._sa.Plaintext()
        self._encoder.encode(factor, float(2**scale_bits), plain)
        for ct in ciphertexts:
            self._evaluator.multiply_plain_inplace(ct, plain)
        return ciphertexts

    def serialize(self, ciphertexts: list[Any]) -> tuple[bytes, ...]:
        return tuple(self._io.dump(c) for c in ciphertexts)

    def decrypt(self, ciphertexts: list[Any], length: int) -> np.ndarray:
        """Decrypt and concatenate the first ``length`` slots.

        Raises:
            ValueError: this engine holds no secret key.
        """
        if self._decryptor is None:
            raise ValueError("cannot decrypt: this context holds no secret key")
        parts = []
        for ct in ciphertexts:
            plain = self._sa.Plaintext()
            self._decryptor.decrypt(ct, plain)
            parts.append(np.asarray(self._encoder.decode_double(plain), dtype=np.float64))
        return np.concatenate(parts)[:length]
