"""Discrete PLDs of the (Poisson-subsampled) Laplace mechanism, by "connect the dots".

With ``mu0 = Lap(0, b)``, ``mu1 = Lap(1, b)`` (sensitivity 1, ``b`` the noise
multiplier) and ``mix = (1-q) mu0 + q mu1``, the log-ratio of ``mix`` to ``mu0`` depends
on ``h(x) = (|x| - |x-1|)/b``: constant ``-1/b`` for ``x <= 0`` and ``1/b`` for
``x >= 1`` (two atoms of the privacy loss) and ``(2x-1)/b`` in between (a continuous
part). Each piece's P- and Q-mass is split between its two neighbouring grid points as
in :mod:`dp._pld_build`, so the result dominates the exact curve for every epsilon.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dp._pld_build import DiscretePld, connect_dots, grid

__all__ = ["laplace_pld_pair"]

Floats = NDArray[np.float64]


def _mass0(x1: Floats, x2: Floats, b: float) -> Floats:
    """Lap(0, b) mass of (x1, x2] for 0 <= x1 <= x2 <= 1."""
    return np.asarray(np.exp(-x1 / b) * -np.expm1(-(x2 - x1) / b) / 2.0)


def _mass1(x1: Floats, x2: Floats, b: float) -> Floats:
    """Lap(1, b) mass of (x1, x2] for 0 <= x1 <= x2 <= 1."""
    return np.asarray(np.exp((x1 - 1.0) / b) * np.expm1((x2 - x1) / b) / 2.0)


def laplace_pld_pair(
    *, sampling_rate: float, noise_multiplier: float, interval: float
) -> tuple[DiscretePld, DiscretePld]:
    """Pessimistic PLDs ``(remove, add)``: (mix, mu0) and (mu0, mix)."""
    q, b = sampling_rate, noise_multiplier
    log1mq = math.log1p(-q) if q < 1.0 else -math.inf
    e = math.exp(-1.0 / b)

    def loss(h: float) -> float:  # log((1-q) + q e^h)
        return float(np.logaddexp(log1mq, math.log(q) + h))

    def x_of(ell: NDArray[np.floating]) -> Floats:  # x in [0, 1] with loss(h(x)) = ell
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.log((np.expm1(ell) + q) / q)
        return np.asarray(np.clip(np.nan_to_num((b * h + 1.0) / 2.0, nan=0.0), 0.0, 1.0))

    l_lo, l_hi = loss(-1.0 / b), loss(1.0 / b)
    # (loss, P, Q) of the two atoms for remove: x <= 0 and x >= 1
    atoms_remove = [(l_lo, (1 - q) / 2 + q * e / 2, 0.5), (l_hi, (1 - q) * e / 2 + q / 2, e / 2)]
    atoms_add = [(-l_lo, 0.5, (1 - q) / 2 + q * e / 2), (-l_hi, e / 2, (1 - q) * e / 2 + q / 2)]

    # remove: loss increasing in x
    edges = grid(l_lo - interval, l_hi, interval)
    xe = x_of(edges * interval)
    m0, m1 = _mass0(xe[:-1], xe[1:], b), _mass1(xe[:-1], xe[1:], b)
    remove = _with_atoms(edges, (1 - q) * m0 + q * m1, m0, atoms_remove, interval)

    # add: loss = -loss(h(x)), decreasing in x; (e_k, e_{k+1}] <-> [x(-e_{k+1}), x(-e_k))
    edges = grid(-l_hi - interval, -l_lo, interval)
    xe = x_of(-edges * interval)
    m0, m1 = _mass0(xe[1:], xe[:-1], b), _mass1(xe[1:], xe[:-1], b)
    add = _with_atoms(edges, m0, (1 - q) * m0 + q * m1, atoms_add, interval)
    return remove, add


def _with_atoms(
    edges: NDArray[np.int64], p_int: Floats, q_int: Floats,
    atoms: list[tuple[float, float, float]], interval: float,
) -> DiscretePld:
    """Add each atom's masses to the grid interval ``(e_k, e_{k+1}]`` holding its loss."""
    p_int, q_int = p_int.copy(), q_int.copy()
    for ell, p, qm in atoms:
        k = math.ceil(ell / interval - 1e-12) - 1 - int(edges[0])
        k = min(max(k, 0), p_int.size - 1)
        p_int[k] += p
        q_int[k] += qm
    return connect_dots(edges, p_int, q_int, interval, 0.0, 0.0)
