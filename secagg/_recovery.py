"""Recovering many Shamir-shared secrets at once, with verification.

Each secret comes with the shares the server received (sorted points, field elements) and a
``check`` that says whether a candidate secret is the right one (a commitment or a
public key). Secrets whose first ``t`` holders are the same points are reconstructed
together with one set of Lagrange coefficients. A secret that fails its check is
retried on other subsets of its shares: first the ``t`` holders not yet caught sending
a bad share, then ``t`` of those a Reed-Solomon decoder finds right, then every subset
(when there are few) or random ones (from the OS entropy, so a coalition cannot
predict which will be tried).

What the check proves and what it does not: a subset that passes proves the
*secret*, not that its shares are honest. Bad shares can cancel out at 0 (two
colluders adding offsets ``d_a, d_b`` with ``l_a d_a + l_b d_b = 0`` for the Lagrange
weights ``l`` of the subset) and still pass. So the polynomial of a passing subset
is trusted to name culprits only when it agrees with at least ``t`` more of the
``n`` received shares than it disagrees with: a wrong polynomial of degree ``t - 1``
meets the honest shares in at most ``t - 1`` points, so no coalition of ``e`` with
``2 e <= n - t + 1`` can frame an honest holder, and every coalition with
``2 e <= n - t`` is named. Past that bound the verified secret is still used (the
sum stays exact) but nobody is named. Shares that are not among those used are not
checked when the first ``t`` already pass.

When they do not, the shares are decoded before any search (Gao's algorithm, which
finds the one polynomial of degree below ``t`` that misses at most ``(n - t) // 2`` of
``n`` values, and those values). A random combination of the limbs is decoded once:
its coefficients come from the OS entropy, so a coalition cannot aim at them, and a
share wrong in any limb is wrong in the combination except with probability ``1 / p``.
If the ``t`` shares found right do not pass with the margin (an unlucky combination),
each limb is decoded on its own, which needs no luck. So every coalition with
``2 e <= n - t`` is named and the round succeeds, deterministically, whenever the
owner dealt and committed honestly. Past that bound the decoder finds nothing (or a
polynomial the check and the margin judge like any other) and the subsets are
searched: every one when there are at most 4096, else 64 random ones, which may all
hold a bad share when many are bad (``e`` of ``n`` with ``((n - e) choose t) /
(n choose t)`` small), and then the round fails although a clean subset exists.

A secret no subset verifies fails the round (an unverified secret could make the sum
wrong). When more than ``t`` shares were received and all lie on one polynomial, the
owner is named in :attr:`RecoveryError.suspects`: its shares are consistent, its
commitment (or advertised key) is not. This is a limit of the protocol, not only of
this code: one client that commits to a seed other than the one it shares, or deals
shares of a key other than the one it advertised, can make a round fail; the error
names it so the caller can leave it out of the next round.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from secagg import _shamir
from secagg._errors import RecoveryError

__all__ = ["recover_secrets", "SecretKey"]

SecretKey = tuple[int, str]  # (owner, "self_mask" | "mask_key")

_RETRIES = 64  # each try costs a Lagrange solve in t points: bounded for n = 1000, t = 700
_EXHAUSTIVE = 4096  # try every t-subset when there are at most this many


Shares = tuple[np.ndarray, np.ndarray]  # (points sorted ascending, (count, LIMBS) field elements)


def _subsets(n: int, t: int) -> Iterator[np.ndarray]:
    if math.comb(n, t) <= _EXHAUSTIVE:
        yield from (np.array(c) for c in itertools.combinations(range(n), t))
        return
    rng = np.random.default_rng()  # fresh OS entropy: a coalition cannot aim at the tries
    for _ in range(_RETRIES):
        yield np.sort(rng.choice(n, t, replace=False))


def _candidates(points: np.ndarray, ys: np.ndarray, t: int,
                suspects: frozenset[int]) -> Iterator[np.ndarray]:
    """Subsets of ``t`` shares to try, in order: the first ``t`` not yet caught, ``t`` the
    decoder finds right, then the search. Lazy: each costs something only if the last failed."""
    n = len(points)
    clean = np.flatnonzero(~np.isin(points, list(suspects)))
    if t <= len(clean) < n:
        yield clean[:t]
    for wrong in _error_sets(points, ys, t):
        yield np.setdiff1d(np.arange(n), wrong)[:t]
    yield from _subsets(n, t)


def _robust(key: SecretKey, shares: Shares, t: int, check: Callable[[bytes], bool],
            suspects: frozenset[int] = frozenset()) -> tuple[bytes, list[int]]:
    """The verified secret and the points of the shares proven bad (see the module notes)."""
    points, ys = shares
    n = len(points)
    verified: bytes | None = None
    for pick in _candidates(points, ys, t, suspects):
        secret = _shamir.limbs_to_secret(_shamir.reconstruct(points[pick], ys[pick]))
        if secret is None or (secret != verified and not check(secret)):
            continue
        verified = secret
        rest = np.setdiff1d(np.arange(n), pick)
        predicted = _predict(points[pick], ys[pick], points[rest])
        off = [int(points[r]) for r, row in zip(rest, predicted, strict=True) if np.any(row != ys[r])]
        if (n - len(off)) - len(off) >= t:  # a margin no wrong polynomial can reach (see above)
            return secret, off
    if verified is not None:
        return verified, []  # the secret is proven; who lied is not
    owner, kind = key
    if n > t and np.array_equal(_predict(points[:t], ys[:t], points[t:]), ys[t:] % _shamir.PRIME):
        # every share lies on one polynomial: forging that takes n - t + 1 colluding holders,
        # while the owner alone decides what it commits to (or advertises) and deals
        what = "commitment" if kind == "self_mask" else "advertised public key"
        raise RecoveryError(f"client {owner}'s {n} {kind} shares agree with one another but not with "
                            f"its {what}: client {owner} dealt or committed falsely", {}, suspects=(owner,))
    raise RecoveryError(f"shares of {key} are inconsistent and no {t} of the {n} "
                        "received ones reconstruct a verified secret", {})


def _predict(xs: np.ndarray, ys: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The values at ``at`` of the polynomial through ``(xs, ys)``, limb by limb."""
    lam = _shamir.lagrange_at(xs, at)  # (len(at), t)
    out = np.zeros((lam.shape[0], ys.shape[1]), dtype=np.int64)
    for i in range(lam.shape[1]):  # loop over the t points; each step is vectorised
        out = (out + lam[:, i : i + 1] * ys[i][None, :] % _shamir.PRIME) % _shamir.PRIME
    return out


# Reed-Solomon decoding over GF(p), Gao's algorithm (S. Gao, "A new algorithm for decoding
# Reed-Solomon codes", 2003). A polynomial is an int64 array of coefficients, lowest degree
# first, without trailing zeros (the zero polynomial is empty). Coefficients stay in [0, p),
# so a product of two fits in int64 with room for one more term.

_P = _shamir.PRIME


def _trim(a: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(a)
    return a[: nonzero[-1] + 1] if nonzero.size else a[:0]


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(max(a.size, b.size), dtype=np.int64)
    out[: a.size] = a
    out[: b.size] -= b
    return _trim(out % _P)


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.size > b.size:
        a, b = b, a
    out = np.zeros(max(a.size + b.size - 1, 0), dtype=np.int64)
    for j, c in enumerate(a.tolist()):  # over the shorter factor: a quotient, usually of degree 1
        out[j : j + b.size] = (out[j : j + b.size] + c * b % _P) % _P
    return _trim(out)


def _divmod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quotient and remainder of ``a / b`` (``b`` not zero), by long division."""
    rem, d = a.copy(), b.size - 1
    inv = pow(int(b[-1]), _P - 2, _P)
    quot = np.zeros(max(a.size - d, 0), dtype=np.int64)
    for k in range(a.size - 1 - d, -1, -1):
        quot[k] = c = int(rem[k + d]) * inv % _P
        rem[k : k + d + 1] = (rem[k : k + d + 1] - c * b) % _P
    return _trim(quot), _trim(rem[:d])


def _evaluate(poly: np.ndarray, xs: np.ndarray) -> np.ndarray:
    out = np.zeros(xs.shape, dtype=np.int64)
    for c in poly[::-1].tolist():  # Horner, vectorised over the points
        out = (out * xs + c) % _P
    return out


def _interpolate(xs: np.ndarray, ys: np.ndarray, master: np.ndarray) -> np.ndarray:
    """The polynomial of degree below ``n`` through the ``n`` points ``(xs, ys)``.

    ``master`` is ``prod (x - xs_i)``; the result is ``sum_i ys_i / master'(xs_i) *
    master / (x - xs_i)``, the quotients built by synthetic division all at once.
    """
    slope = master[1:] * np.arange(1, master.size) % _P  # master'
    weights = ys * _shamir._inv_mod(_evaluate(slope, xs)) % _P
    out = np.zeros(xs.size, dtype=np.int64)
    quot = np.ones(xs.size, dtype=np.int64)  # coefficient k of master / (x - xs_i), for every i
    for k in range(xs.size - 1, -1, -1):
        out[k] = (quot * weights % _P).sum() % _P
        quot = (master[k] + xs * quot) % _P
    return _trim(out)


def _decode(xs: np.ndarray, ys: np.ndarray, t: int, master: np.ndarray) -> np.ndarray | None:
    """The positions where ``ys`` (field elements at the distinct points ``xs``) differ from
    the one polynomial of degree below ``t`` that misses at most ``(n - t) // 2`` of them,
    or ``None`` when there is no such polynomial. ``master`` is ``prod (x - xs_i)``.
    """
    n = xs.size
    g1 = _interpolate(xs, ys, master)
    r0, r1 = master, g1
    v0, v1 = np.zeros(0, dtype=np.int64), np.ones(1, dtype=np.int64)
    while 2 * (r1.size - 1) >= n + t:  # extended Euclid, keeping r1 = u * master + v1 * g1 ...
        quot, rem = _divmod(r0, r1)
        r0, r1, v0, v1 = r1, rem, v1, _sub(v0, _mul(quot, v1))
    poly, rem = _divmod(r1, v1)  # ... stopped halfway: v1 locates the errors, r1 = poly * v1
    if rem.size or poly.size > t:
        return None
    wrong = np.flatnonzero(_evaluate(poly, xs) != ys)
    return wrong if 2 * wrong.size <= n - t else None


def _error_sets(points: np.ndarray, ys: np.ndarray, t: int) -> Iterator[np.ndarray]:
    """Positions of the wrong shares, as decoded: first from a random combination of the
    limbs, then (if asked again) from each limb on its own, which needs no luck."""
    ys = ys % _P
    master = np.ones(1, dtype=np.int64)
    for x in points.tolist():
        master = _mul(master, np.array([-x % _P, 1], dtype=np.int64))
    mix = _shamir._random_field((ys.shape[1],))  # OS entropy: a coalition cannot aim at it
    wrong = _decode(points, (ys * mix % _P).sum(axis=1) % _P, t, master)
    if wrong is None:
        return  # every polynomial misses over (n - t) // 2 shares in some limb: limbs alone won't do
    yield wrong
    union = np.zeros(0, dtype=np.int64)
    for limb in ys.T:
        found = _decode(points, limb, t, master)
        if found is None:
            return
        union = np.union1d(union, found)
        if 2 * union.size > points.size - t:
            return
    if not np.array_equal(union, wrong):  # a wrong share whose mix happened to be right
        yield union


def recover_secrets(
    shares: Mapping[SecretKey, Shares],
    *,
    threshold: int,
    check: Callable[[int, str, bytes], bool],
) -> tuple[dict[SecretKey, bytes], list[tuple[int, SecretKey]]]:
    """Reconstruct and verify every secret; return them and the ``(point, key)`` of bad shares.

    ``check(*key, secret)`` must return ``True`` for the right secret.

    Raises:
        RecoveryError: a secret has fewer than ``threshold`` shares, or its shares
            cannot be made to reconstruct a secret that passes ``check``.
    """
    groups: dict[bytes, list[SecretKey]] = defaultdict(list)
    for key, (points, _) in shares.items():
        if len(points) < threshold:
            raise RecoveryError("too few shares", {key: (len(points), threshold)})
        groups[points[:threshold].tobytes()].append(key)
    secrets: dict[SecretKey, bytes] = {}
    bad: list[tuple[int, SecretKey]] = []
    for point_bytes, keys in groups.items():
        points = np.frombuffer(point_bytes, dtype=np.int64)
        ys = np.stack([shares[k][1][:threshold] for k in keys], axis=1)  # (t, secrets, limbs)
        limbs = _shamir.reconstruct(points, ys)
        for key, row in zip(keys, limbs, strict=True):
            secret = _shamir.limbs_to_secret(row)
            if secret is not None and check(*key, secret):
                secrets[key] = secret
                continue
            fixed, wrong = _robust(key, shares[key], threshold, functools.partial(check, *key),
                                   frozenset(p for p, _ in bad))
            secrets[key] = fixed
            bad.extend((p, key) for p in wrong)
    return secrets, bad
