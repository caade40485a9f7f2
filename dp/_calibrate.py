"""Questions people ask of an accountant, answered by pure functions.

* :func:`account`: epsilon after ``steps`` rounds of a sampled Gaussian.
* :func:`epsilon_over_rounds`: epsilon for many round counts in one call (RDP: one RDP
  curve, one broadcast; PLD: one FFT composition per round count).
* :func:`calibrate_noise`: the smallest noise multiplier meeting a target epsilon.
* :func:`max_rounds`: the most rounds a budget allows.

A round is ``PoissonSampled`` (``sampling="poisson"``, each record kept with probability
``sample_rate``) or ``SampledWithoutReplacement`` (``sampling="fixed"``:
``round(sample_rate * population_size)`` of ``population_size`` records, or the fraction
``sample_rate`` exactly when no population is given; substitution adjacency, so the noise
multiplier is relative to the replace-one sensitivity).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from dp._accountant import PrivacyAccountant, check_delta, check_epsilon
from dp._errors import CalibrationError, DPValueError
from dp._events import DPEvent, Gaussian, PoissonSampled, SampledWithoutReplacement
from dp._pld import PldAccountant
from dp._rdp import DEFAULT_ORDERS, RdpAccountant, rdp_of, rdp_to_epsilon

__all__ = [
    "AccountResult",
    "Calibration",
    "round_event",
    "make_accountant",
    "account",
    "epsilon_over_rounds",
    "calibrate_noise",
    "max_rounds",
]

ACCOUNTANTS = ("rdp", "pld")
_ROWS_PER_CHUNK = 16384  # x ~160 orders x 8 bytes: about 20 MB per broadcast
SAMPLINGS = ("poisson", "fixed")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountResult:
    """Epsilon spent at ``delta``; ``order`` is the RDP order used (None for PLD)."""

    epsilon: float
    delta: float
    accountant: str
    order: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """A noise multiplier and the epsilon it achieves (never above the target)."""

    noise_multiplier: float
    epsilon: float
    delta: float
    accountant: str


def _check_rate(sample_rate: float) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise DPValueError(f"sample_rate must be a real number, got {sample_rate!r}")
    if not (0.0 < sample_rate <= 1.0):
        raise DPValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    return float(sample_rate)


def _check_steps(steps: int, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DPValueError(f"{name} must be an int >= 1, got {steps!r}")
    return int(steps)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise DPValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def round_event(
    *, noise_multiplier: float, sample_rate: float, sampling: str = "poisson",
    population_size: int | None = None,
) -> DPEvent:
    """The DP event of one round; raises DPValueError on bad arguments.

    ``sampling="fixed"`` with ``population_size``: the sample size is
    ``round(sample_rate * population_size)`` and must be >= 1. Without it, the round
    samples the fraction ``sample_rate`` exactly: the Wang-Balle-Kasiviswanathan bound
    depends only on the ratio, so the event uses the smallest ``m / N`` equal to it.
    """
    q = _check_rate(sample_rate)
    _check_choice("sampling", sampling, SAMPLINGS)
    gauss = Gaussian(noise_multiplier=noise_multiplier)
    if q == 1.0:
        return gauss
    if sampling == "poisson":
        return PoissonSampled(rate=q, event=gauss)
    if population_size is None:
        m, n = _exact_ratio(q)
        return SampledWithoutReplacement(population_size=n, sample_size=m, event=gauss)
    m = round(q * population_size)
    if m < 1:
        raise DPValueError(
            f"sample_rate * population_size must round to >= 1, got {q * population_size!r}"
        )
    return SampledWithoutReplacement(population_size=population_size, sample_size=m, event=gauss)


def _exact_ratio(q: float) -> tuple[int, int]:
    """``(m, N)`` with ``m / N == q`` in float64, the smallest denominator up to 1e12."""
    frac = Fraction(q).limit_denominator(10**12)
    if frac.numerator / frac.denominator != q:
        frac = Fraction(q)  # exact: a power-of-two denominator
    return frac.numerator, frac.denominator


def make_accountant(accountant: str) -> PrivacyAccountant:
    """A fresh ``"rdp"`` or ``"pld"`` accountant; raises DPValueError otherwise."""
    _check_choice("accountant", accountant, ACCOUNTANTS)
    return RdpAccountant() if accountant == "rdp" else PldAccountant()


def account(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
    accountant: str = "rdp", sampling: str = "poisson", population_size: int | None = None,
) -> AccountResult:
    """Epsilon after ``steps`` rounds; raises DPValueError / UnsupportedEventError."""
    steps = _check_steps(steps)
    event = round_event(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                        sampling=sampling, population_size=population_size)
    acc = make_accountant(accountant)
    acc.compose(event, steps)
    if isinstance(acc, RdpAccountant):
        eps, order = acc.get_epsilon_and_order(delta)
        return AccountResult(epsilon=eps, delta=delta, accountant="rdp", order=order)
    return AccountResult(epsilon=acc.get_epsilon(delta), delta=delta, accountant="pld", order=None)


def epsilon_over_rounds(
    event: DPEvent, rounds: NDArray[np.int64] | list[int], *, delta: float,
    accountant: str = "rdp",
) -> NDArray[np.float64]:
    """Epsilon at ``delta`` after each round count in ``rounds`` (each >= 1) of ``event``.

    RDP computes the per-round curve once and converts all counts in one broadcast.
    Raises DPValueError for bad rounds/delta, UnsupportedEventError for the event.
    """
    _check_choice("accountant", accountant, ACCOUNTANTS)
    r = np.asarray(rounds)
    if r.ndim != 1 or r.size == 0 or not np.issubdtype(r.dtype, np.integer) or np.any(r < 1):
        raise DPValueError("rounds must be a non-empty 1-D sequence of ints >= 1")
    if accountant == "rdp":
        orders = np.array(DEFAULT_ORDERS)
        per_round = rdp_of(event, orders)
        out = np.empty(r.size)
        for i in range(0, r.size, _ROWS_PER_CHUNK):  # bounded memory for any length
            rows = r[i:i + _ROWS_PER_CHUNK, None].astype(np.float64)
            out[i:i + _ROWS_PER_CHUNK] = rdp_to_epsilon(orders, rows * per_round[None, :], delta)[0]
        return out
    out = np.empty(r.size)
    for i, t in enumerate(r):
        out[i] = PldAccountant().compose(event, int(t)).get_epsilon(delta)
    return out


def calibrate_noise(
    *, target_epsilon: float, delta: float, sample_rate: float, steps: int,
    accountant: str = "rdp", sampling: str = "poisson", population_size: int | None = None,
    rtol: float = 1e-4,
) -> Calibration:
    """Smallest noise multiplier (to relative ``rtol``) whose epsilon is <= the target.

    The returned multiplier is the upper end of the final bisection bracket, so its
    epsilon never overshoots the target. Raises DPValueError for bad arguments and
    CalibrationError if no multiplier up to 1e6 reaches the target.
    """
    target = check_epsilon(target_epsilon)
    if target <= 0.0:
        raise CalibrationError("target_epsilon must be > 0: no finite noise gives epsilon 0")
    delta = check_delta(delta)
    if delta <= 0.0:
        raise DPValueError("delta must be in (0, 1) for calibration")
    _check_choice("accountant", accountant, ACCOUNTANTS)
    steps = _check_steps(steps)

    # arguments the accountant refuses whatever the noise (sample_rate, sampling, population,
    # PLD's delta floor) raise here, so that eps_of below can read a PLD refusal as "too
    # little noise"
    account(noise_multiplier=1e6, sample_rate=sample_rate, steps=steps, delta=delta,
            accountant=accountant, sampling=sampling, population_size=population_size)

    def eps_of(sigma: float, which: str = accountant) -> float:
        try:
            return account(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps,
                           delta=delta, accountant=which, sampling=sampling,
                           population_size=population_size).epsilon
        except DPValueError:
            if which != "pld":
                raise
            # PLD refuses a noise multiplier too small for one PLD (or for its FFT grid);
            # that only happens below the answer's noise: count it as over the target
            return math.inf

    hi = 1.0
    if accountant == "pld":  # the RDP answer is a valid (looser) starting point
        # if RDP's floor (its largest order) is above the target, PLD may still reach it
        with contextlib.suppress(CalibrationError):
            hi = _bisect(lambda z: eps_of(z, "rdp"), target, 1.0, 1e-3)[0]
    hi, eps_hi = _bisect(eps_of, target, hi, rtol)
    return Calibration(noise_multiplier=hi, epsilon=eps_hi, delta=delta, accountant=accountant)


def _bisect(eps_of: Callable[[float], float], target: float, start: float,
            rtol: float) -> tuple[float, float]:
    """Smallest ``z`` (to ``rtol``) with ``eps_of(z) <= target``, and ``eps_of(z)``.

    ``eps_of`` is non-increasing. Raises CalibrationError past ``z = 1e6``.
    """
    hi = start
    eps_hi = eps_of(hi)
    while eps_hi > target:
        if hi > 1e6:
            raise CalibrationError(
                f"target_epsilon {target!r} is unreachable: noise multiplier 1e6 still "
                f"gives epsilon {eps_hi:.4g}"
            )
        hi *= 2.0
        eps_hi = eps_of(hi)
    lo = hi / 2.0
    while lo > 1e-6 and (eps_lo := eps_of(lo)) <= target:
        hi, eps_hi, lo = lo, eps_lo, lo / 2.0
    while hi - lo > rtol * hi:
        mid = math.sqrt(lo * hi)
        eps_mid = eps_of(mid)
        if eps_mid <= target:
            hi, eps_hi = mid, eps_mid
        else:
            lo = mid
    return hi, eps_hi


def max_rounds(
    *, noise_multiplier: float, sample_rate: float, target_epsilon: float, delta: float,
    accountant: str = "rdp", sampling: str = "poisson", population_size: int | None = None,
    limit: int = 10**7,
) -> int:
    """Most rounds (<= ``limit``) whose epsilon stays <= the target; 0 if one round exceeds it."""
    target = check_epsilon(target_epsilon)
    limit = _check_steps(limit, "limit")
    event = round_event(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                        sampling=sampling, population_size=population_size)

    def eps(t: int) -> float:
        return float(epsilon_over_rounds(event, [t], delta=delta, accountant=accountant)[0])

    if eps(1) > target:
        return 0
    lo, hi = 1, 2
    while hi <= limit and eps(hi) <= target:
        lo, hi = hi, 2 * hi
    if hi > limit:
        if eps(limit) <= target:
            return limit
        hi = limit
    while hi - lo > 1:  # eps(lo) <= target < eps(hi)
        mid = (lo + hi) // 2
        if eps(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo
