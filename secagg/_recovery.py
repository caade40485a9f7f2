"""Recovering many Shamir-shared secrets at once, with verification.

Each secret comes with the shares the server received (sorted points, field elements) and a
``check`` that says whether a candidate secret is the right one (a commitment or a
public key). Secrets whose first ``t`` holders are the same points are reconstructed
together with one set of Lagrange coefficients. A secret that fails its check is
retried on other subsets of its shares: first the ``t`` holders not yet caught sending
a bad share, then every subset (when there are few) or random ones (from the OS
entropy, so a coalition cannot predict which will be tried).

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
checked when the first ``t`` already pass. The search itself is complete only when
every subset is tried (at most 4096 of them); beyond that, until a first culprit is
named, 64 random subsets may all hold a bad share when many are bad (``e`` of ``n``
with ``((n - e) choose t) / (n choose t)`` small) and the round fails although a
clean subset exists.

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


def _subsets(n: int, t: int, first: np.ndarray | None) -> Iterator[np.ndarray]:
    if first is not None:
        yield first
    if math.comb(n, t) <= _EXHAUSTIVE:
        yield from (np.array(c) for c in itertools.combinations(range(n), t))
        return
    rng = np.random.default_rng()  # fresh OS entropy: a coalition cannot aim at the tries
    for _ in range(_RETRIES):
        yield np.sort(rng.choice(n, t, replace=False))


def _robust(key: SecretKey, shares: Shares, t: int, check: Callable[[bytes], bool],
            suspects: frozenset[int] = frozenset()) -> tuple[bytes, list[int]]:
    """The verified secret and the points of the shares proven bad (see the module notes)."""
    points, ys = shares
    n = len(points)
    clean = np.flatnonzero(~np.isin(points, list(suspects)))
    first = clean[:t] if len(clean) >= t and len(clean) < n else None
    verified: bytes | None = None
    for pick in _subsets(n, t, first):
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
