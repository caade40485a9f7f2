"""Shamir secret sharing over the prime field GF(2^31 - 1), vectorised.

A 32-byte secret is cut into sixteen 16-bit limbs, each shared with its own random
polynomial of degree ``t - 1``; all limbs of all secrets are shared at once. Shares
for the evaluation points ``xs`` are ``V @ C`` where ``V[i, j] = xs[i]^j`` and ``C``
holds the coefficients. That product runs as a float64 matrix multiply (BLAS), exact
because ``C`` is split into limbs small enough that every dot product stays below
2^53. Reconstruction is a Lagrange combination at 0 with coefficients computed once
per set of points and reused for every secret that set holds.

Fewer than ``t`` shares are uniformly distributed whatever the secret (the
coefficients come from the operating system's CSPRNG), so they reveal nothing.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "PRIME",
    "LIMBS",
    "split",
    "reconstruct",
    "lagrange_at",
    "secret_to_limbs",
    "limbs_to_secret",
]

PRIME = (1 << 31) - 1
LIMBS = 16  # 16-bit limbs of a 32-byte secret


def secret_to_limbs(secrets: list[bytes]) -> np.ndarray:
    """``(m, 16)`` int64 limbs of ``m`` 32-byte secrets."""
    if any(len(s) != 2 * LIMBS for s in secrets):
        raise ValueError(f"secrets must be {2 * LIMBS} bytes each")
    return np.frombuffer(b"".join(secrets), dtype="<u2").reshape(len(secrets), LIMBS).astype(np.int64)


def limbs_to_secret(limbs: np.ndarray) -> bytes | None:
    """The 32-byte secret from reconstructed limbs, or ``None`` if a limb is out of range."""
    if np.any((limbs < 0) | (limbs >= 1 << 16)):
        return None
    return limbs.astype("<u2").tobytes()


def _random_field(shape: tuple[int, ...]) -> np.ndarray:
    """Uniform elements of GF(p) from the OS CSPRNG (31-bit draws, rejecting p itself)."""
    count = math.prod(shape)
    out = np.frombuffer(os.urandom(4 * count), dtype="<u4").astype(np.int64) & PRIME
    bad = out == PRIME
    while bad.any():
        out[bad] = np.frombuffer(os.urandom(4 * int(bad.sum())), dtype="<u4").astype(np.int64) & PRIME
        bad = out == PRIME
    return out.reshape(shape)


def _vandermonde(xs: np.ndarray, t: int) -> np.ndarray:
    v = np.empty((xs.shape[0], t), dtype=np.int64)
    v[:, 0] = 1
    for j in range(1, t):
        v[:, j] = v[:, j - 1] * xs % PRIME
    return v


def _mulmod_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b mod p`` for field elements, exact through float64 BLAS on limbs of ``b``."""
    inner = a.shape[1]
    bits = 53 - 31 - max(1, math.ceil(math.log2(inner + 1)))
    if bits < 1:
        raise ValueError(f"threshold {inner} is too large for exact sharing")
    af = a.astype(np.float64)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    mask = (1 << bits) - 1
    for shift in range(0, 31, bits):
        part = (af @ ((b >> shift) & mask).astype(np.float64)).astype(np.int64) % PRIME
        out = (out + (part << shift) % PRIME) % PRIME
    return out


def split(secrets: np.ndarray, xs: np.ndarray, threshold: int) -> np.ndarray:
    """Shares of every row of ``secrets`` (``(m, L)`` field elements) at points ``xs``.

    Returns an ``(len(xs), m, L)`` int64 array: ``shares[i]`` is what the holder of
    ``xs[i]`` receives.

    Raises:
        ValueError: ``threshold`` is not in ``1..len(xs)``, or a point is 0, out of the
            field, or repeated.
    """
    xs = np.asarray(xs, dtype=np.int64)
    if not 1 <= threshold <= xs.shape[0]:
        raise ValueError(f"threshold must be in 1..{xs.shape[0]}, got {threshold}")
    if np.any((xs <= 0) | (xs >= PRIME)) or np.unique(xs).shape[0] != xs.shape[0]:
        raise ValueError("share points must be distinct and in 1..p-1")
    m, width = secrets.shape
    coeffs = np.empty((threshold, m * width), dtype=np.int64)
    coeffs[0] = secrets.reshape(-1)
    coeffs[1:] = _random_field((threshold - 1, m * width))
    return _mulmod_matrix(_vandermonde(xs, threshold), coeffs).reshape(xs.shape[0], m, width)


def _prod_mod(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Product modulo p along ``axis`` by pairwise halving (no overflow)."""
    a = np.moveaxis(a, axis, -1)
    while a.shape[-1] > 1:
        if a.shape[-1] % 2:
            a = np.concatenate([a, np.ones(a.shape[:-1] + (1,), dtype=np.int64)], axis=-1)
        a = a[..., 0::2] * a[..., 1::2] % PRIME
    return a[..., 0]


def _inv_mod(a: np.ndarray) -> np.ndarray:
    """Elementwise inverse modulo p (Fermat), vectorised square-and-multiply."""
    result = np.ones_like(a)
    base = a % PRIME
    e = PRIME - 2
    while e:
        if e & 1:
            result = result * base % PRIME
        base = base * base % PRIME
        e >>= 1
    return result


def lagrange_at(xs: np.ndarray, at: np.ndarray | int = 0) -> np.ndarray:
    """Lagrange coefficients ``L_i(z)`` of points ``xs`` at each ``z`` in ``at``.

    Returns ``(len(at), len(xs))`` (or ``(len(xs),)`` for a scalar ``at``).
    """
    xs = np.asarray(xs, dtype=np.int64)
    zs = np.atleast_1d(np.asarray(at, dtype=np.int64))
    diff = (xs[:, None] - xs[None, :]) % PRIME
    np.fill_diagonal(diff, 1)
    den = _prod_mod(diff, axis=1)  # prod_{j != i} (x_i - x_j)
    zdiff = (zs[:, None] - xs[None, :]) % PRIME  # (z - x_j)
    total = _prod_mod(zdiff, axis=1)  # prod_j (z - x_j)
    hit = zdiff == 0
    safe = np.where(hit, 1, zdiff)
    num = total[:, None] * _inv_mod(safe) % PRIME  # prod_{j != i} (z - x_j), when z != x_i
    coeffs = num * _inv_mod(den)[None, :] % PRIME
    rows = hit.any(axis=1)  # z equals a point: the basis is the indicator of that point
    coeffs[rows] = hit[rows]
    return coeffs[0] if np.ndim(at) == 0 else coeffs


def reconstruct(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The secrets (values at 0) from shares ``ys[i]`` held at ``xs[i]``.

    ``ys`` is ``(t, ...)``; every trailing position is an independent secret limb
    sharing the same points. With exactly ``t`` shares of a degree ``t - 1``
    polynomial this is the secret; with fewer it is noise.
    """
    lam = lagrange_at(xs, 0)
    flat = ys.reshape(ys.shape[0], -1) % PRIME
    return ((lam[:, None] * flat % PRIME).sum(axis=0) % PRIME).reshape(ys.shape[1:])
