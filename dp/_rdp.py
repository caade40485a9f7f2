"""Rényi DP accounting: per-event RDP curves, composition, and conversion to (eps, delta).

Pure functions first (``rdp_of``, ``rdp_to_epsilon``, ``rdp_to_delta``), then the thin
:class:`RdpAccountant`. RDP curves are arrays over a fixed vector of orders; composing
is adding them, and ``T`` rounds of the same event is ``T`` times its curve, so a whole
table of epsilons over rounds is one broadcast (:func:`rdp_to_epsilon` accepts a 2-D
array, one row per round count).

Conversion (Balle, Barthe, Gaboardi, Hsu, Sato 2020, Thm. 21, as dp_accounting and
opacus use): ``eps = r + log((a-1)/a) - (log delta + log a)/(a - 1)``, minimised over
orders, together with ``delta >= sqrt(1 - exp(-r))`` (KL / Pinsker route) which gives
``eps = 0``. The classic conversion of Mironov (2017), ``r - log(delta)/(a-1)``, is
available as ``method="classic"`` to reproduce older published numbers.
"""

from __future__ import annotations

import math
from functools import singledispatch

import numpy as np
from numpy.typing import NDArray

from dp._accountant import PrivacyAccountant, check_delta, check_epsilon
from dp._errors import DPValueError, UnsupportedEventError
from dp._events import (
    Composed,
    DiscreteGaussian,
    DPEvent,
    Gaussian,
    Laplace,
    PoissonSampled,
    SampledWithoutReplacement,
    SelfComposed,
    Skellam,
)
from dp._rdp_bounds import (
    rdp_discrete_gaussian,
    rdp_gaussian,
    rdp_laplace,
    rdp_poisson_generic,
    rdp_skellam,
    rdp_without_replacement,
    rdp_without_replacement_gaussian,
)
from dp._rdp_gaussian import rdp_poisson_gaussian

__all__ = ["DEFAULT_ORDERS", "RdpAccountant", "rdp_of", "rdp_to_epsilon", "rdp_to_delta"]

Floats = NDArray[np.float64]

#: Union of dp_accounting 0.6's and opacus 1.6's default orders (opacus's list is a
#: subset of dp_accounting's), so the minimum over orders is never looser than either.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    sorted(
        {1 + x / 10.0 for x in range(1, 100)}
        | {float(x) for x in range(11, 64)}
        | {128.0, 256.0, 512.0, 1024.0}
    )
)

_MIN_ORDER_FOR_BALLE = 1.01  # the bound is numerically unstable as the order -> 1


@singledispatch
def rdp_of(event: DPEvent, orders: Floats) -> Floats:
    """RDP curve of ``event`` at ``orders`` (all > 1).

    Raises :class:`~dp._errors.UnsupportedEventError` for events without an RDP bound.
    """
    raise UnsupportedEventError(event, "rdp")


@rdp_of.register
def _(event: Gaussian, orders: Floats) -> Floats:
    return rdp_gaussian(noise_multiplier=event.noise_multiplier, orders=orders)


@rdp_of.register
def _(event: Laplace, orders: Floats) -> Floats:
    return rdp_laplace(noise_multiplier=event.noise_multiplier, orders=orders)


@rdp_of.register
def _(event: DiscreteGaussian, orders: Floats) -> Floats:
    return rdp_discrete_gaussian(sigma=event.sigma, sensitivity=event.sensitivity, orders=orders)


@rdp_of.register
def _(event: Skellam, orders: Floats) -> Floats:
    return rdp_skellam(
        mu=event.mu, l1_sensitivity=event.l1_sensitivity,
        l2_sensitivity=event.l2_sensitivity, orders=orders,
    )


_BASES = (Gaussian, Laplace, DiscreteGaussian, Skellam)


@rdp_of.register
def _(event: PoissonSampled, orders: Floats) -> Floats:
    inner = event.event
    if isinstance(inner, Gaussian):
        return rdp_poisson_gaussian(
            sampling_rate=event.rate, noise_multiplier=inner.noise_multiplier, orders=orders
        )
    if not isinstance(inner, _BASES):
        raise UnsupportedEventError(event, "rdp", "only a base mechanism can be sampled")
    return rdp_poisson_generic(
        sampling_rate=event.rate, base_rdp=lambda a: rdp_of(inner, a), orders=orders
    )


@rdp_of.register
def _(event: SampledWithoutReplacement, orders: Floats) -> Floats:
    inner = event.event
    if not isinstance(inner, _BASES):
        raise UnsupportedEventError(event, "rdp", "only a base mechanism can be sampled")
    if isinstance(inner, Gaussian):
        return rdp_without_replacement_gaussian(
            sampling_rate=event.rate, noise_multiplier=inner.noise_multiplier, orders=orders
        )
    eps_inf = float(rdp_of(inner, np.array([np.inf]))[0])
    return rdp_without_replacement(
        sampling_rate=event.rate, base_rdp=lambda a: rdp_of(inner, a),
        base_rdp_inf=eps_inf, orders=orders,
    )


@rdp_of.register
def _(event: SelfComposed, orders: Floats) -> Floats:
    return np.asarray(event.count * rdp_of(event.event, orders))


@rdp_of.register
def _(event: Composed, orders: Floats) -> Floats:
    total = np.zeros(len(orders))
    for e in event.events:
        total = total + rdp_of(e, orders)
    return total


def _orders_array(orders: object) -> Floats:
    a = np.asarray(orders, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise DPValueError("orders must be a non-empty 1-D sequence")
    if np.any(np.isnan(a)) or np.any(a <= 1.0):
        raise DPValueError("orders must all be > 1")
    return a


def rdp_to_epsilon(
    orders: Floats, rdp: Floats, delta: float, *, method: str = "balle"
) -> tuple[Floats, Floats]:
    """Smallest epsilon at ``delta`` from RDP curves, and the order achieving it.

    ``rdp`` is 1-D (one curve) or 2-D (one curve per row, e.g. per round count); the
    result has one entry per curve (a 0-d array for a 1-D input). ``method`` is
    ``"balle"`` (Balle et al. 2020) or ``"classic"`` (Mironov 2017). Raises
    :class:`~dp._errors.DPValueError` for a delta outside (0, 1), negative RDP or an
    unknown method.
    """
    delta = check_delta(delta)
    if delta <= 0.0:
        raise DPValueError("delta must be > 0 for RDP conversion")
    a = _orders_array(orders)
    r = np.asarray(rdp, dtype=np.float64)
    if np.any(r < 0) or np.any(np.isnan(r)):
        raise DPValueError("rdp must be >= 0 and not NaN")
    if method == "balle":
        # eps = r + c(a) with c independent of r: one broadcast add for any number of rows
        usable = a > _MIN_ORDER_FOR_BALLE
        const = np.where(usable, np.log1p(-1.0 / a) - (math.log(delta) + np.log(a)) / (a - 1.0),
                         np.inf)
        # KL route: delta^2 > 1 - exp(-r), i.e. r < -log(1 - delta^2), gives eps = 0
        kl_zero = r < -math.log1p(-delta * delta)
    elif method == "classic":
        const = -math.log(delta) / (a - 1.0)
        kl_zero = np.zeros(r.shape, dtype=bool)
    else:
        raise DPValueError(f"method must be 'balle' or 'classic', got {method!r}")
    eps = np.where(kl_zero, 0.0, r + const)
    idx = np.argmin(eps, axis=-1)
    best = np.take_along_axis(eps, np.expand_dims(idx, -1), axis=-1)[..., 0]
    return np.maximum(best, 0.0), a[idx]


def rdp_to_delta(orders: Floats, rdp: Floats, epsilon: float) -> tuple[Floats, Floats]:
    """Smallest delta at ``epsilon`` (Balle et al. 2020 and the KL bound), and its order."""
    epsilon = check_epsilon(epsilon)
    a = _orders_array(orders)
    r = np.asarray(rdp, dtype=np.float64)
    if np.any(r < 0) or np.any(np.isnan(r)):
        raise DPValueError("rdp must be >= 0 and not NaN")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_kl = np.where(r == 0.0, -np.inf, 0.5 * np.log(-np.expm1(-r)))
        log_balle = (a - 1.0) * (r - epsilon + np.log1p(-1.0 / a)) - np.log(a)
        log_balle = np.where(a > _MIN_ORDER_FOR_BALLE, log_balle, np.inf)
        log_d = np.minimum(log_kl, log_balle)
    log_d = np.where(np.isnan(log_d), np.inf, log_d)
    idx = np.argmin(log_d, axis=-1)
    best = np.take_along_axis(log_d, np.expand_dims(idx, -1), axis=-1)[..., 0]
    return np.minimum(np.exp(best), 1.0), a[idx]


class RdpAccountant(PrivacyAccountant):
    """Rényi DP accountant over a fixed vector of orders (default :data:`DEFAULT_ORDERS`).

    Example::

        acc = RdpAccountant()
        acc.compose(PoissonSampled(rate=256 / 60000, event=Gaussian(noise_multiplier=1.12)), 14063)
        acc.get_epsilon(1e-5)  # 2.519 (TF-Privacy MNIST; the classic conversion gave 2.92)

    Notes
    -----
    * Supports every event in :mod:`dp._events`: Gaussian, Laplace, discrete Gaussian and
      Skellam, each alone, Poisson-sampled or sampled without replacement, and their
      compositions. Poisson sampling uses add/remove adjacency; sampling without
      replacement uses substitution (replace-one) adjacency, so there the noise is
      relative to the replace-one sensitivity (twice the clip norm for a clipped sum).
    * RDP is an upper bound: its epsilon is always above the tight value of
      :class:`~dp._pld.PldAccountant` (by about 10% for DP-SGD), and it answers in about a
      millisecond, for any number of steps, and for a whole table of round counts in one
      call (:func:`~dp._calibrate.epsilon_over_rounds`).
    * With the default orders the result is never looser than dp_accounting's or
      opacus's, and on fractional orders it is exact where dp_accounting 0.6 overstates.
    """

    name = "rdp"

    def __init__(self, orders: tuple[float, ...] | Floats = DEFAULT_ORDERS) -> None:
        super().__init__()
        self._orders = _orders_array(orders)
        self._rdp = np.zeros_like(self._orders)

    @property
    def orders(self) -> Floats:
        """The orders (a copy)."""
        return self._orders.copy()

    @property
    def rdp(self) -> Floats:
        """The composed RDP curve so far (a copy)."""
        return self._rdp.copy()

    def _prepare(self, event: DPEvent) -> Floats:
        return rdp_of(event, self._orders)

    def _commit(self, prepared: Floats, count: int) -> None:
        self._rdp = self._rdp + count * prepared  # a new array: snapshots stay valid

    def _state(self) -> Floats:
        return self._rdp

    def _restore(self, state: Floats) -> None:
        self._rdp = state

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """``(epsilon, order)``: the best epsilon at ``delta`` and the order giving it."""
        eps, order = rdp_to_epsilon(self._orders, self._rdp, delta)
        return float(eps), float(order)

    def get_epsilon(self, delta: float) -> float:
        """Smallest epsilon at ``delta`` > 0; raises DPValueError for delta outside (0, 1)."""
        return self.get_epsilon_and_order(delta)[0]

    def get_delta(self, epsilon: float) -> float:
        """Smallest delta at ``epsilon`` >= 0; raises DPValueError for a negative epsilon."""
        return float(rdp_to_delta(self._orders, self._rdp, epsilon)[0])
