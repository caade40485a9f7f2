"""Recovering many Shamir-shared secrets at once, with verification.

Each secret comes with the shares the server received (sorted points, field elements) and a
``check`` that says whether a candidate secret is the right one (a commitment or a
public key). Secrets whose first ``t`` holders are the same points are reconstructed
together with one set of Lagrange coefficients. A secret that fails its check is
retried on other subsets of its shares; once a subset passes, the shares that lie
off its polynomial are reported as bad.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np

from secagg import _shamir
from secagg._errors import RecoveryError

__all__ = ["recover_secrets", "SecretKey"]

SecretKey = tuple[int, str]  # (owner, "self_mask" | "mask_key")

_RETRIES = 64


Shares = tuple[np.ndarray, np.ndarray]  # (points sorted ascending, (count, LIMBS) field elements)


def _robust(key: SecretKey, shares: Shares, t: int, check: Callable[[bytes], bool]) -> tuple[bytes, list[int]]:
    points, ys = shares
    rng = np.random.default_rng(len(points))  # which subsets to try is not secret
    for _ in range(_RETRIES if len(points) > t else 0):
        pick = np.sort(rng.choice(len(points), t, replace=False))
        secret = _shamir.limbs_to_secret(_shamir.reconstruct(points[pick], ys[pick]))
        if secret is None or not check(secret):
            continue
        rest = np.setdiff1d(np.arange(len(points)), pick)
        predicted = _predict(points[pick], ys[pick], points[rest])
        bad = [int(points[r]) for r, row in zip(rest, predicted, strict=True) if np.any(row != ys[r])]
        return secret, bad
    raise RecoveryError(f"shares of {key} are inconsistent and no {t} of the {len(points)} "
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
            fixed, wrong = _robust(key, shares[key], threshold, functools.partial(check, *key))
            secrets[key] = fixed
            bad.extend((p, key) for p in wrong)
    return secrets, bad
