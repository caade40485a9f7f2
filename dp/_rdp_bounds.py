"""RDP of the base mechanisms and the generic subsampling bounds.

* Laplace (Mironov 2017, Prop. 6), discrete Gaussian (Canonne, Kamath, Steinke 2020:
  an integer shift of L2 norm ``D`` costs ``a D^2 / (2 s^2)``; coordinates add up),
  Skellam (Agarwal, Kairouz, Liu 2021, Thm. 3.5).
* Poisson subsampling of any mechanism: Zhu and Wang (2019, Thm. 6) for integer orders.
* Sampling without replacement (substitution adjacency): Wang, Balle and
  Kasiviswanathan (2019, Thm. 9 and 27) for integer orders; Theorem 27's forward
  differences for the Gaussian (:func:`rdp_without_replacement_gaussian`).

Fractional orders interpolate the cumulant ``(a - 1) eps(a)`` linearly between the
neighbouring integers: the true cumulant is convex in ``a``, so the chord of two upper
bounds is an upper bound (WBK 2019, Cor. 10). Order 1 has cumulant 0.

Every function takes validated arguments (the DP events check them) and returns an
array shaped like ``orders``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from dp._rdp_gaussian import log_binom

__all__ = [
    "rdp_laplace",
    "rdp_discrete_gaussian",
    "rdp_skellam",
    "rdp_gaussian",
    "rdp_poisson_generic",
    "rdp_without_replacement",
    "rdp_without_replacement_gaussian",
]

Floats = NDArray[np.float64]
RdpFn = Callable[[Floats], Floats]  # integer orders (as floats) -> RDP


def rdp_gaussian(*, noise_multiplier: float, orders: Floats) -> Floats:
    """``a / (2 z^2)``: the Gaussian mechanism."""
    return np.asarray(np.asarray(orders, dtype=np.float64) / (2.0 * noise_multiplier**2))


def rdp_laplace(*, noise_multiplier: float, orders: Floats) -> Floats:
    """Laplace mechanism of scale ``b`` = noise_multiplier x L1 sensitivity."""
    a = np.asarray(orders, dtype=np.float64)
    inv_b = 1.0 / noise_multiplier
    out = np.full_like(a, inv_b)  # order inf: 1/b
    fin = np.isfinite(a)
    af = a[fin]
    # log(a/(2a-1) e^{(a-1)/b} + (a-1)/(2a-1) e^{-a/b}) / (a-1), in log space
    t1 = np.log(af / (2 * af - 1)) + (af - 1) * inv_b
    t2 = np.log((af - 1) / (2 * af - 1)) - af * inv_b
    out[fin] = np.logaddexp(t1, t2) / (af - 1)
    return out


def rdp_discrete_gaussian(*, sigma: float, sensitivity: float, orders: Floats) -> Floats:
    """``a D^2 / (2 s^2)`` for integer-valued queries of L2 sensitivity ``D``."""
    return np.asarray(np.asarray(orders, dtype=np.float64) * sensitivity**2 / (2.0 * sigma**2))


def rdp_skellam(*, mu: float, l1_sensitivity: float, l2_sensitivity: float, orders: Floats) -> Floats:
    """Agarwal et al. 2021 bound for Sk(mu, mu) noise; integer orders, ceiling otherwise.

    ``a D2^2 / (4 mu) + min(((2a - 1) D2^2 + 6 D1) / (16 mu^2), 3 D1 / (4 mu))``.

    Rényi divergence grows with the order, so the bound at ``ceil(a)`` holds at ``a``.
    """
    a = np.ceil(np.asarray(orders, dtype=np.float64))
    l1, l2 = l1_sensitivity, l2_sensitivity
    second = np.minimum(((2 * a - 1) * l2 * l2 + 6 * l1) / (16 * mu * mu), 3 * l1 / (4 * mu))
    return np.asarray(a * l2 * l2 / (4 * mu) + second)


def _interpolate(orders: Floats, int_cumulant: Callable[[int], float]) -> Floats:
    """RDP from an integer-order cumulant bound ``(a-1) eps(a)``, interpolated linearly."""
    a = np.asarray(orders, dtype=np.float64)
    out = np.full_like(a, np.inf)
    cache: dict[int, float] = {1: 0.0}

    def cum(k: int) -> float:
        if k not in cache:
            cache[k] = int_cumulant(k)
        return cache[k]

    for i, x in enumerate(a):
        if not math.isfinite(x):
            continue
        lo, hi = math.floor(x), math.ceil(x)
        if lo == hi:
            out[i] = cum(lo) / (x - 1)
        else:
            t = x - lo
            out[i] = ((1 - t) * cum(lo) + t * cum(hi)) / (x - 1)
    return out


def _logsumexp(v: Floats) -> float:
    m = float(np.max(v))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.sum(np.exp(v - m))))


def rdp_poisson_generic(*, sampling_rate: float, base_rdp: RdpFn, orders: Floats) -> Floats:
    """Zhu and Wang (2019) upper bound for Poisson subsampling of any mechanism."""
    q = sampling_rate
    if q >= 1.0:
        return base_rdp(np.asarray(orders, dtype=np.float64))

    def cumulant(alpha: int) -> float:
        # A - 1 with A = (1-q)^(a-1)(1+(a-1)q) + C(a,2) q^2 (1-q)^(a-2) e^{eps(2)}
        #               + 3 sum_{l>=3} C(a,l) (1-q)^(a-l) q^l e^{(l-1) eps(l)}
        head = math.expm1((alpha - 1) * math.log1p(-q) + math.log1p((alpha - 1) * q))
        ls = np.arange(2, alpha + 1, dtype=np.float64)
        eps = base_rdp(ls)
        log_terms = (
            log_binom(float(alpha), ls) + ls * math.log(q) + (alpha - ls) * math.log1p(-q)
            + (ls - 1) * eps
        )
        log_terms[1:] += math.log(3.0)
        tail = _logsumexp(log_terms)
        if tail > 30.0:  # head is within [-1, 0]: negligible at this scale
            return tail
        return math.log1p(head + math.exp(tail))

    return _interpolate(orders, cumulant)


def rdp_without_replacement(
    *, sampling_rate: float, base_rdp: RdpFn, base_rdp_inf: float, orders: Floats
) -> Floats:
    """WBK (2019) upper bound for sampling a fixed-size subset without replacement."""
    g = sampling_rate
    if g >= 1.0:
        return base_rdp(np.asarray(orders, dtype=np.float64))
    # log min{2, (e^{eps_inf} - 1)^j} as a function of j
    log_em1_inf = math.log(math.expm1(base_rdp_inf)) if math.isfinite(base_rdp_inf) else math.inf

    def log_min2(j: Floats) -> Floats:
        return np.asarray(np.minimum(math.log(2.0), j * log_em1_inf))

    def cumulant(alpha: int) -> float:
        e2 = float(base_rdp(np.array([2.0]))[0])
        log_t2 = 2 * math.log(g) + math.log(alpha * (alpha - 1) / 2) + min(
            math.log(4.0) + math.log(math.expm1(e2)),
            e2 + float(log_min2(np.array([2.0]))[0]),
        )
        terms = [log_t2]
        if alpha >= 3:
            js = np.arange(3, alpha + 1, dtype=np.float64)
            lt = log_binom(float(alpha), js) + js * math.log(g) + (js - 1) * base_rdp(js) + log_min2(js)
            terms.extend(lt.tolist())
        return float(np.logaddexp(0.0, _logsumexp(np.array(terms))))

    return _interpolate(orders, cumulant)


_WOR_MAX_DIFF_ORDER = 256  # forward differences up to this order (as dp_accounting)
_WOR_MAX_GRID = 400_000  # quadrature points; beyond this only Theorem 9's term is used


def _log_even_forward_diffs(noise_multiplier: float, max_order: int) -> Floats:
    """``log Delta^{2m} f(0)`` for ``m = 0 .. max_order // 2``, ``f(x) = e^{x(x-1)/(2 z^2)}``
    (``e^{(x - 1) eps(x)}`` of the Gaussian, WBK 2019 Thm. 27).

    ``f(x) = E[L^x]`` for the likelihood ratio ``L = e^{Y - s^2/2}``, ``Y ~ N(0, s^2)``,
    ``s = 1/z``, so the forward difference is the central moment ``E[(L - 1)^{2m}]``: a
    positive integrand, computed by
    the trapezoid rule in log space (no cancellation, unlike the alternating binomial sum).
    Returns an array of ``+inf`` (no bound) when the grid would be too large.
    """
    s = 1.0 / noise_multiplier
    ms = np.arange(max_order // 2 + 1, dtype=np.float64)
    m_max = float(ms[-1])
    h = s / 16.0
    lo = -(40.0 + math.sqrt(2.0 * m_max)) * s
    hi = max(s * math.sqrt(2.0 * m_max), 2.0 * m_max * s * s) + 40.0 * s
    n = int(math.ceil((hi - lo) / h)) + 1
    if n > _WOR_MAX_GRID:
        return np.full(ms.size, np.inf)
    y = lo + h * np.arange(n)
    x = y - 0.5 * s * s
    big = np.maximum(x, 30.0)  # log(e^x - 1) without overflow where x > 30
    with np.errstate(divide="ignore"):  # |L - 1| = 0 at one point
        log_abs = np.where(x > 30.0, big + np.log1p(-np.exp(-big)),
                           np.log(np.abs(np.expm1(np.minimum(x, 30.0)))))
    log_abs = np.maximum(log_abs, -1e300)  # a finite stand-in for log 0
    log_phi = -0.5 * (y / s) ** 2
    out = np.empty(ms.size)
    for chunk in range(0, ms.size, 32):
        mm = ms[chunk:chunk + 32]
        v = 2.0 * mm[:, None] * log_abs[None, :] + log_phi[None, :]
        top = np.max(v, axis=1)
        out[chunk:chunk + 32] = top + np.log(np.sum(np.exp(v - top[:, None]), axis=1))
    # normalisation, plus a 1e-9 relative margin for the quadrature's rounding
    return np.asarray(out + math.log(h / (s * math.sqrt(2.0 * math.pi))) + 1e-9)


def rdp_without_replacement_gaussian(
    *, sampling_rate: float, noise_multiplier: float, orders: Floats
) -> Floats:
    """WBK (2019, Thm. 27) for the Gaussian sampled without replacement (integer orders,
    interpolated), as dp_accounting: the ``j >= 3`` terms of Theorem 9 become
    ``min(4 sqrt(Delta^{2 floor(j/2)} Delta^{2 ceil(j/2)}), 2 e^{(j - 1) eps(j)})``, which
    vanish as the noise grows (Theorem 9's ``2 e^{(j-1) eps(j)}`` alone does not).
    Orders above 256 keep Theorem 9's term, as dp_accounting does.
    """
    g, z = sampling_rate, noise_multiplier
    a_all = np.asarray(orders, dtype=np.float64)
    if g >= 1.0:
        return rdp_gaussian(noise_multiplier=z, orders=a_all)
    fin = a_all[np.isfinite(a_all)]
    top = int(math.ceil(float(np.max(fin)))) if fin.size else 2
    log_d = _log_even_forward_diffs(z, min(top + 1, _WOR_MAX_DIFF_ORDER))
    e2 = 1.0 / z**2  # eps(2) of the Gaussian
    log_t2_inner = min(math.log(4.0) + math.log(math.expm1(e2)), e2 + math.log(2.0))

    def cumulant(alpha: int) -> float:
        terms = [2 * math.log(g) + math.log(alpha * (alpha - 1) / 2) + log_t2_inner]
        if alpha >= 3:
            js = np.arange(3, alpha + 1)
            jf = js.astype(np.float64)
            theorem9 = math.log(2.0) + (jf - 1) * jf / (2.0 * z * z)
            s = theorem9
            small = js <= _WOR_MAX_DIFF_ORDER
            if np.any(small):
                jj = js[small]
                diff = math.log(4.0) + 0.5 * (log_d[jj // 2] + log_d[(jj + 1) // 2])
                s = s.copy()
                s[small] = np.minimum(diff, theorem9[small])
            terms.extend((log_binom(float(alpha), jf) + jf * math.log(g) + s).tolist())
        return float(np.logaddexp(0.0, _logsumexp(np.array(terms))))

    return _interpolate(orders, cumulant)
