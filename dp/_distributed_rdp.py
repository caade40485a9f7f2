"""RDP of sums of discrete noise, rounding sensitivity, and RDP -> (epsilon, delta).

Pure functions in the *integer* units of the distributed mechanisms (after
scaling by 1/gamma and rounding); :mod:`dp._distributed` maps a configuration onto
them.

Sources (facts, not code):

* Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for
  Federated Learning with Secure Aggregation" (ICML 2021): the L2 bound after
  conditional stochastic rounding (their Theorem 1 / Proposition 22) and the RDP of
  a sum of m independent N_Z(0, sigma^2) (Theorem 1 / Proposition 14), with
  ``tau = 10 * sum_{k=1}^{m-1} exp(-2 pi^2 sigma^2 k/(k+1))``.
* Agarwal, Kairouz, Liu, "The Skellam Mechanism for Differentially Private
  Federated Learning" (NeurIPS 2021), Corollary 3.6: for symmetric Skellam noise of
  variance V and integer order alpha > 1, ``eps(alpha) <= alpha D2^2/(2 V) +
  min(((2 alpha - 1) D2^2 + 6 D1)/(4 V^2), 3 D1/(2 V))``.
The conversion to (epsilon, delta) and the default orders are the accountant's
(:mod:`dp._rdp`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dp._argcheck import check_int, check_nonnegative, check_positive
from dp._errors import DPValueError

__all__ = [
    "rounded_l2_bound",
    "rounded_l1_bound",
    "dgauss_sum_rdp",
    "dgauss_sum_rdp_worst",
    "skellam_rdp",
]

def rounded_l2_bound(*, l2: float, beta: float, dim: int) -> float:
    """L2 norm bound of a vector of norm <= ``l2`` after conditional rounding.

    Stochastic rounding moves each of the ``dim`` coordinates by less than 1, so
    the norm is at most ``l2 + sqrt(dim)``. Conditional rounding (retrying until the
    norm is small enough) guarantees the tighter
    ``sqrt(l2^2 + dim/4 + sqrt(2 ln(1/beta)) (l2 + sqrt(dim)/2))``; a single try
    meets it with probability at least ``1 - beta``. ``beta = 0`` means
    unconditional rounding. The minimum of both is returned.

    Raises:
        DPValueError: ``l2`` < 0, ``beta`` not in [0, 1), or ``dim`` < 1.
    """
    c = check_nonnegative("l2", l2)
    b = check_nonnegative("beta", beta)
    if b >= 1.0:
        raise DPValueError(f"beta must be in [0, 1), got {beta!r}")
    d = check_int("dim", dim, minimum=1)
    loose = c + math.sqrt(d)
    if b == 0.0:
        return loose
    tight_sq = c * c + d / 4.0 + math.sqrt(2.0 * math.log(1.0 / b)) * (c + math.sqrt(d) / 2.0)
    return min(loose, math.sqrt(tight_sq))


def rounded_l1_bound(*, l2: float, dim: int) -> float:
    """L1 bound of an integer vector with L2 norm <= ``l2`` in ``dim`` coordinates.

    ``||v||_1 <= sqrt(dim) ||v||_2`` always, and ``||v||_1 <= ||v||_2^2`` for
    integer vectors (each |v_i| <= v_i^2).
    """
    return l2 * min(math.sqrt(dim), l2)


def dgauss_sum_rdp(
    orders: Sequence[float] | np.ndarray,
    *,
    l2: float,
    l1: float,
    sigma: float,
    num_clients: int,
    dim: int,
) -> np.ndarray:
    """RDP of adding the sum of ``num_clients`` independent N_Z(0, sigma^2)^dim.

    ``l2``/``l1`` are the sensitivities and ``sigma`` each client's noise
    parameter, all in integer units. With ``m = num_clients``,
    ``s2 = l2/(sqrt(m) sigma)``, ``s1 = l1/(sqrt(m) sigma)`` and the tau above,
    RDP(alpha) is the minimum of ``alpha/2 s2^2 + tau dim``,
    ``alpha/2 (s2^2 + 2 s1 tau + tau^2 dim)`` and ``alpha/2 (s2 + sqrt(dim) tau)^2``
    (KLS 2021). With one client tau = 0 and this is the exact discrete Gaussian
    bound ``alpha l2^2 / (2 sigma^2)`` (Canonne, Kamath, Steinke 2020), valid at
    every order. With several clients a fractional order alpha is evaluated at
    ``ceil(alpha)`` (an upper bound, RDP grows with the order), so the result is
    sound whether or not the bound is read as holding only at integer orders.

    Raises:
        DPValueError: an order is not finite and > 1; ``sigma`` <= 0; ``l2`` or
            ``l1`` < 0; ``num_clients`` or ``dim`` < 1.
    """
    a = _orders(orders)
    s = check_positive("sigma", sigma)
    m = check_int("num_clients", num_clients, minimum=1)
    d = check_int("dim", dim, minimum=1)
    l2v, l1v = check_nonnegative("l2", l2), check_nonnegative("l1", l1)
    return _dgauss_rdp_rows(a, l2v, l1v, s, np.array([m]), d)[0]


def dgauss_sum_rdp_worst(
    orders: Sequence[float] | np.ndarray,
    *,
    l2: float,
    l1: float,
    sigma: float,
    min_clients: int,
    max_clients: int,
    dim: int,
) -> np.ndarray:
    """The largest :func:`dgauss_sum_rdp` over every client count in the range.

    Fewer clients mean less noise, but more clients mean a larger tau (the sum of
    discrete Gaussians drifts from a discrete Gaussian), so with small per-client
    sigma the worst case is not always the fewest clients. This takes the maximum
    per order over all counts in ``[min_clients, max_clients]`` (vectorised).

    Raises:
        DPValueError: as :func:`dgauss_sum_rdp`, or ``max_clients < min_clients``.
    """
    a = _orders(orders)
    s = check_positive("sigma", sigma)
    lo = check_int("min_clients", min_clients, minimum=1)
    hi = check_int("max_clients", max_clients, minimum=lo)
    d = check_int("dim", dim, minimum=1)
    l2v, l1v = check_nonnegative("l2", l2), check_nonnegative("l1", l1)
    rows = _dgauss_rdp_rows(a, l2v, l1v, s, np.arange(lo, hi + 1), d)
    return np.asarray(rows.max(axis=0))


def _dgauss_rdp_rows(
    a: np.ndarray, l2: float, l1: float, s: float, ms: np.ndarray, d: int
) -> np.ndarray:
    """KLS 2021 RDP, one row per client count in ``ms`` (ascending, >= 1)."""
    k = np.arange(1, int(ms.max()), dtype=np.float64)
    steps = np.exp(-2.0 * math.pi**2 * s * s * k / (k + 1.0))
    tau_of = 10.0 * np.concatenate(([0.0], np.cumsum(steps)))  # tau_of[m-1] = tau(m)
    tau = tau_of[ms - 1][:, None]
    orders = np.where(ms[:, None] > 1, np.ceil(a)[None, :], a[None, :])
    root = np.sqrt(ms.astype(np.float64))[:, None] * s
    s2, s1 = l2 / root, l1 / root
    t1 = orders / 2.0 * s2 * s2 + tau * d
    t2 = orders / 2.0 * (s2 * s2 + 2.0 * s1 * tau + tau * tau * d)
    t3 = orders / 2.0 * (s2 + math.sqrt(d) * tau) ** 2
    return np.asarray(np.minimum(np.minimum(t1, t2), t3))


def skellam_rdp(
    orders: Sequence[float] | np.ndarray, *, l2: float, l1: float, variance: float
) -> np.ndarray:
    """RDP of adding symmetric Skellam noise of ``variance`` per coordinate (ALK 2021).

    ``variance`` is ``2 mu`` for Sk(mu, mu) = Poisson(mu) - Poisson(mu).

    The bound holds for integer orders; a fractional order alpha is evaluated at
    ``ceil(alpha)``, which is an upper bound because RDP grows with the order.

    Raises:
        DPValueError: an order is not finite and > 1; ``variance`` <= 0; ``l2`` or
            ``l1`` < 0.
    """
    a = np.ceil(_orders(orders))
    v = check_positive("variance", variance)
    d2 = check_nonnegative("l2", l2) ** 2
    d1 = check_nonnegative("l1", l1)
    extra = np.minimum(((2.0 * a - 1.0) * d2 + 6.0 * d1) / (4.0 * v * v), 3.0 * d1 / (2.0 * v))
    return a * d2 / (2.0 * v) + extra


def _orders(orders: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(orders, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 1.0):
        raise DPValueError("orders must be a non-empty list of finite numbers > 1")
    return a
