"""Closed forms: the exact privacy curve of the Gaussian mechanism (Balle and Wang 2018).

For noise ``N(0, s^2)`` on a query of sensitivity 1 (any adjacency where the two
outputs are shifted Gaussians), ``delta(eps) = Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s)``.
``T`` compositions equal one run with ``s / sqrt(T)``.
"""

from __future__ import annotations

import math

import numpy as np

from dp._accountant import check_delta, check_epsilon
from dp._errors import DPValueError
from dp._pld_build import norm_cdf

__all__ = ["gaussian_delta", "gaussian_epsilon"]


def _check_sigma(noise_multiplier: float) -> float:
    if not (isinstance(noise_multiplier, (int, float)) and 0.0 < noise_multiplier < math.inf):
        raise DPValueError(f"noise_multiplier must be finite and > 0, got {noise_multiplier!r}")
    return float(noise_multiplier)


def gaussian_delta(*, noise_multiplier: float, epsilon: float) -> float:
    """Exact delta of the Gaussian mechanism at ``epsilon``; raises DPValueError."""
    s = _check_sigma(noise_multiplier)
    eps = check_epsilon(epsilon)
    a = float(norm_cdf(np.array(1.0 / (2 * s) - eps * s)))
    b = float(norm_cdf(np.array(-1.0 / (2 * s) - eps * s)))
    return max(0.0, a - math.exp(eps) * b)


def gaussian_epsilon(*, noise_multiplier: float, delta: float) -> float:
    """Exact epsilon of the Gaussian mechanism at ``delta`` (bisection to 1e-12 relative)."""
    s = _check_sigma(noise_multiplier)
    d = check_delta(delta)
    if d <= 0.0:
        raise DPValueError("delta must be > 0 for the Gaussian mechanism")
    if gaussian_delta(noise_multiplier=s, epsilon=0.0) <= d:
        return 0.0
    lo, hi = 0.0, 1.0
    while gaussian_delta(noise_multiplier=s, epsilon=hi) > d:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if gaussian_delta(noise_multiplier=s, epsilon=mid) > d:
            lo = mid
        else:
            hi = mid
    return hi
