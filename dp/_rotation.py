"""The randomised Hadamard rotation of distributed DP: pad, flip signs, transform.

``rotate(x) = H D x`` where ``D`` is a diagonal of random signs and ``H`` the
Walsh-Hadamard matrix normalised by ``1/sqrt(d)``, so ``H`` is symmetric and
orthogonal (``H H = I``) and ``unrotate(y) = D H y``. The rotation spreads a
vector's norm evenly over the coordinates: each rotated coordinate of a vector of
norm c is sub-Gaussian with variance proxy ``c^2 / d`` (Hoeffding over the signs),
which is what lets a small modulus hold the sum.

The signs come from a *public* seed that every client and the server share for the
round. They are derived with SHAKE-256 (not NumPy's generators), so clients and
server agree whatever their NumPy versions. The transform is the in-place fast
Walsh-Hadamard butterfly, O(d log d), vectorised: one NumPy pass per level.
"""

from __future__ import annotations

import hashlib

import numpy as np

from dp._errors import DPValueError

__all__ = [
    "SharedSeed",
    "padded_dim",
    "fwht",
    "rotation_signs",
    "rotate",
    "unrotate",
]

SharedSeed = int | bytes
_LABEL = b"blindsum/dp/distributed/hadamard-signs/v1"


def padded_dim(dim: int) -> int:
    """The smallest power of two that is at least ``dim`` (and at least 1)."""
    return 1 << max(0, int(dim) - 1).bit_length()


def fwht(x: np.ndarray) -> np.ndarray:
    """The normalised Walsh-Hadamard transform along the last axis (a new array).

    The last axis must have a power-of-two length. The transform is its own
    inverse: ``fwht(fwht(x)) == x`` up to rounding.

    Raises:
        DPValueError: the last axis is empty or not a power of two long.
    """
    y = np.array(x, dtype=np.float64, copy=True)
    d = y.shape[-1] if y.ndim else 0
    if d == 0 or d & (d - 1):
        raise DPValueError(f"x must have a power-of-two length along its last axis, got {d}")
    lead = y.shape[:-1]
    h = 1
    while h < d:
        view = y.reshape(*lead, d // (2 * h), 2, h)
        a = view[..., 0, :]
        b = view[..., 1, :]
        total = a + b
        np.subtract(a, b, out=b)
        a[...] = total
        h *= 2
    y *= 1.0 / np.sqrt(d)
    return y


def rotation_signs(shared_seed: SharedSeed, dim: int) -> np.ndarray:
    """``dim`` signs (+1.0 or -1.0) derived from the public seed with SHAKE-256.

    Raises:
        DPValueError: ``shared_seed`` is not a non-negative int below 2**256 or
            non-empty bytes; ``dim`` < 1.
    """
    if dim < 1:
        raise DPValueError(f"dim must be >= 1, got {dim}")
    xof = hashlib.shake_256(_LABEL + _seed_bytes(shared_seed))
    raw = np.frombuffer(xof.digest((dim + 7) // 8), dtype=np.uint8)
    bits = np.unpackbits(raw)[:dim]
    return 1.0 - 2.0 * bits.astype(np.float64)


def rotate(x: np.ndarray, shared_seed: SharedSeed) -> np.ndarray:
    """Zero-pad ``x`` (1-D) to a power of two and apply ``H D``."""
    d = padded_dim(x.shape[0])
    padded = np.zeros(d, dtype=np.float64)
    padded[: x.shape[0]] = x
    return fwht(padded * rotation_signs(shared_seed, d))


def unrotate(y: np.ndarray, shared_seed: SharedSeed, dim: int) -> np.ndarray:
    """Inverse of :func:`rotate`: apply ``D H`` and keep the first ``dim`` entries.

    Raises:
        DPValueError: ``y`` is not 1-D of power-of-two length at least ``dim``.
    """
    if y.ndim != 1 or y.shape[0] < dim:
        raise DPValueError(f"y must be 1-D with at least dim={dim} entries, got {y.shape}")
    return (fwht(y) * rotation_signs(shared_seed, y.shape[0]))[:dim]


def _seed_bytes(seed: SharedSeed) -> bytes:
    if isinstance(seed, bytes):
        if not seed:
            raise DPValueError("shared_seed must be non-empty bytes or a non-negative int")
        return b"b" + seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise DPValueError(f"shared_seed must be an int or bytes, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**256:
        raise DPValueError(f"shared_seed must be in [0, 2**256), got {seed}")
    return b"i" + int(seed).to_bytes(32, "big")
