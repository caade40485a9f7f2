"""Discrete privacy loss distributions (PLDs) of the (Poisson-subsampled) Gaussian.

A PLD is the law of the privacy loss ``L = log(P(x)/Q(x))`` for ``x ~ P`` on the grid
``k * interval``, plus a mass at ``+inf``. It is built pessimistically by
"connect the dots" (Doroshenko, Ghazi, Kamath, Kumar, Manurangsi 2022): the P-mass whose
loss falls in ``(e_k, e_{k+1}]`` is split between the two grid points so that both its
P-mass and its Q-mass are kept. As a function of ``exp(eps)`` the hockey-stick curve of
the result is the chord of the true (convex) curve between grid points, hence above it
for every ``eps``, and composition keeps the order. P-mass below the grid moves up to
the lowest grid point and P-mass above it moves to ``+inf`` (both pessimistic). The
Gaussian grids stop ``_TAIL_SIGMAS`` standard deviations out, so at most about 1e-22 of
P-mass per step goes to ``+inf`` (dp_accounting truncates at e^-50 = 1.9e-22).

Interval masses are computed from Gaussian tails on the side where they are small, so
no mass is lost to cancellation; the remove and add directions share their x edges, so
the error function is evaluated once per edge and Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["DiscretePld", "gaussian_pld_pair", "norm_sf", "norm_cdf", "connect_dots", "grid"]

Floats = NDArray[np.float64]
_TAIL_SIGMAS = 9.75  # N(0,1) tail beyond 9.75 is 9.2e-23


def norm_sf(t: Floats) -> Floats:
    """Standard normal survival function ``P(N(0,1) > t)``, accurate in the far tail."""
    u = np.asarray(t, dtype=np.float64) / math.sqrt(2.0)
    out = np.fromiter(map(math.erfc, u.ravel().tolist()), np.float64, count=u.size)
    return out.reshape(u.shape) / 2.0


def norm_cdf(t: Floats) -> Floats:
    """Standard normal ``P(N(0,1) <= t)``, accurate in the far left tail."""
    return norm_sf(-np.asarray(t, dtype=np.float64))


def _interval_masses(t: Floats) -> Floats:
    """``P(t[i] < N(0,1) <= t[i+1])`` for increasing edges ``t`` (``-inf``/``inf`` allowed).

    Each difference is taken in the tail where both ends are small, so no mass is lost
    to cancellation; the error function is evaluated once per edge.
    """
    return _masses_from_tail(t, norm_sf(np.abs(t)))


def _masses_from_tail(t: Floats, tail: Floats) -> Floats:
    """:func:`_interval_masses` given ``tail = norm_sf(|t|)`` (the small side of each edge)."""
    sf = np.where(t >= 0.0, tail, 1.0 - tail)
    cdf = np.where(t < 0.0, tail, 1.0 - tail)
    upper = t[:-1] >= 0.0
    out = np.where(upper, sf[:-1] - sf[1:], cdf[1:] - cdf[:-1])
    return np.maximum(out, 0.0)


@dataclass(frozen=True, slots=True)
class DiscretePld:
    """Privacy loss ``(offset + i) * interval`` has probability ``pmf[i]``; plus ``+inf``.

    ``gaussian_noise`` is set when this is the plain (unsampled) Gaussian mechanism of that
    noise multiplier: compositions of those are one Gaussian, so they can merge exactly.
    """

    interval: float
    offset: int
    pmf: Floats
    infinity_mass: float
    gaussian_noise: float | None = None

    @property
    def losses(self) -> Floats:
        """The loss value of each entry of ``pmf``."""
        return np.asarray((self.offset + np.arange(self.pmf.size)) * self.interval, dtype=np.float64)


def connect_dots(
    edges_idx: NDArray[np.int64], p_int: Floats, q_int: Floats, interval: float,
    p_below: float, p_above: float,
) -> DiscretePld:
    """Split interval masses between grid points (edges ``edges_idx * interval``)."""
    lo_idx = int(edges_idx[0])
    n = edges_idx.size
    e_hi = edges_idx[1:] * interval
    # mass a to the lower point, b to the upper: a + b = p, a e^{-lo} + b e^{-hi} = q
    a = (q_int * np.exp(e_hi) - p_int) / math.expm1(interval)
    a = np.clip(a, 0.0, p_int)
    b = p_int - a
    pmf = np.zeros(n)
    pmf[:-1] += a
    pmf[1:] += b
    pmf[0] += p_below
    return DiscretePld(interval=interval, offset=lo_idx, pmf=pmf, infinity_mass=p_above)


def grid(lo_loss: float, hi_loss: float, interval: float) -> NDArray[np.int64]:
    lo = math.floor(lo_loss / interval)
    hi = max(math.ceil(hi_loss / interval), lo + 1)
    return np.arange(lo, hi + 1, dtype=np.int64)


def gaussian_pld_pair(
    *, sampling_rate: float, noise_multiplier: float, interval: float
) -> tuple[DiscretePld, DiscretePld]:
    """Pessimistic PLDs ``(remove, add)`` of one Poisson-subsampled Gaussian step.

    With ``mu0 = N(0, s^2)``, ``mu1 = N(1, s^2)``, ``mix = (1-q) mu0 + q mu1``: ``remove``
    is the pair (mix, mu0) and ``add`` the pair (mu0, mix). ``q = 1`` is the plain
    Gaussian mechanism (the two directions then coincide).
    """
    q, s = sampling_rate, noise_multiplier
    s2 = s * s
    x_lo, x_hi = -_TAIL_SIGMAS * s, 1.0 + _TAIL_SIGMAS * s
    log1mq = math.log1p(-q) if q < 1.0 else -math.inf

    def loss_remove(x: float) -> float:  # log((1-q) + q e^{(2x-1)/(2 s^2)}), increasing
        return float(np.logaddexp(log1mq, math.log(q) + (2 * x - 1) / (2 * s2)))

    def x_of(ell: NDArray[np.floating]) -> Floats:  # inverse of exp(ell) = (1-q) + q e^{(2x-1)/(2 s^2)}
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(0.5 + s2 * np.log((np.expm1(ell) + q) / q))

    # Both directions use the same x edges x_of(j * interval) (remove on j, add on -j),
    # so the error function is evaluated once per edge of the union of the two grids.
    rem_edges = grid(max(loss_remove(x_lo), log1mq) if q < 1.0 else loss_remove(x_lo),
                     loss_remove(x_hi), interval)
    hi_loss = -loss_remove(x_lo)
    add_edges = grid(-loss_remove(x_hi), hi_loss if q == 1.0 else min(hi_loss, -log1mq), interval)
    j0 = min(int(rem_edges[0]), -int(add_edges[-1]))
    j1 = max(int(rem_edges[-1]), -int(add_edges[0]))
    xs = x_of(np.arange(j0, j1 + 1, dtype=np.int64) * interval)
    xs = np.where(np.isnan(xs), -np.inf, xs)  # below log(1-q): no x at all
    t0, t1 = xs / s, (xs - 1.0) / s
    m0_all = _masses_from_tail(t0, norm_sf(np.abs(t0)))  # m[i]: mass of (xs[i], xs[i+1]]
    m1_all = _masses_from_tail(t1, norm_sf(np.abs(t1)))

    def masses(j_lo: int, j_hi: int) -> tuple[Floats, Floats, Floats]:
        """x edges for j in [j_lo, j_hi] and the mu0, mu1 masses between them."""
        return xs[j_lo - j0: j_hi - j0 + 1], m0_all[j_lo - j0: j_hi - j0], m1_all[j_lo - j0: j_hi - j0]

    # remove: P = mix, Q = mu0, loss increasing in x, loss > log(1-q).
    edges = rem_edges
    xe, m0, m1 = masses(int(edges[0]), int(edges[-1]))
    p_int, q_int = (1 - q) * m0 + q * m1, m0
    x_top = float(xe[-1])
    p_above = (1 - q) * float(norm_sf(np.array(x_top / s))) + q * float(
        norm_sf(np.array((x_top - 1) / s))
    )
    p_below = 0.0
    if math.isfinite(float(xe[0])):
        p_below = (1 - q) * float(norm_cdf(np.array(xe[0] / s))) + q * float(
            norm_cdf(np.array((xe[0] - 1) / s))
        )
    remove = connect_dots(edges, p_int, q_int, interval, p_below, p_above)

    # add: P = mu0, Q = mix, loss = -loss_remove(x), decreasing in x, loss < -log(1-q).
    edges = add_edges
    # loss in (e_k, e_{k+1}] <=> x in [x_of(-e_{k+1}), x_of(-e_k))
    xr, m0, m1 = masses(-int(edges[-1]), -int(edges[0]))  # increasing x
    xe = xr[::-1]
    p_int, q_int = m0[::-1], ((1 - q) * m0 + q * m1)[::-1]
    x_bottom = float(xe[0])  # losses below the grid: x beyond x_bottom
    p_below = float(norm_sf(np.array(x_bottom / s)))
    x_topl = float(xe[-1])  # losses above the grid: x below x_topl
    p_above = float(norm_cdf(np.array(x_topl / s))) if math.isfinite(x_topl) else 0.0
    add = connect_dots(edges, p_int, q_int, interval, p_below, p_above)
    return remove, add
