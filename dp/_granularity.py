"""Choosing gamma, the grid step of distributed DP, from the modulus and the noise.

Each coordinate of the aggregate (in integer units, after the random rotation) is
sub-Gaussian with variance proxy ``(v_sig + n s_in^2) / gamma^2 + n / 4``:

* ``v_sig = (n c)^2 / d`` when ``norm_growth="linear"``: the norm of a sum of n
  clipped vectors is at most n c, and a randomised Hadamard rotation makes each
  coordinate of a vector of norm r sub-Gaussian with proxy r^2/d. This is the
  worst case (all clients aligned, as correlated model updates can be), so the
  wrap bound is rigorous. ``"sqrt"`` uses ``n c^2 / d``, right for roughly
  independent updates but only a heuristic (TFF's ``sqrtn_norm_growth``).
* ``n s_in^2`` with ``s_in = z c / sqrt(E)``: the noise shares (input units).
* ``n / 4``: each client's rounding error lies in (-1, 1) (proxy 1/4).

Requiring ``k`` proxies to fit in half the modulus, with
``k = sqrt(2 ln(2 d / wrap_prob))`` so that the union bound over the d coordinates
is ``wrap_prob``, gives (KLS 2021 Sec. 4, TFF's heuristic with this k)
``gamma = k sqrt((v_sig + n s_in^2) / (4^(bits-1) - k^2 n / 4))``.
"""

from __future__ import annotations

import math
from typing import Literal

from dp._argcheck import check_int, check_open_unit, check_positive
from dp._errors import DPValueError
from dp._rotation import padded_dim

__all__ = ["NormGrowth", "MIN_LOCAL_STD", "choose_gamma", "wrap_bound"]

NormGrowth = Literal["linear", "sqrt"]
#: The smallest per-client noise std, in grid steps, that the configuration accepts:
#: KLS's analysis of sums of discrete Gaussians assumes sigma >= 1/2, and below it
#: the rounding error (std up to 1/2) would be as large as the noise.
MIN_LOCAL_STD = 0.5


def choose_gamma(
    *,
    bits: int,
    dim: int,
    clip: float,
    noise_multiplier: float,
    expected_clients: int,
    max_clients: int | None = None,
    wrap_prob: float = 1e-6,
    norm_growth: NormGrowth = "linear",
) -> float:
    """The grid step gamma (input units per integer step) for a modulus of 2^bits.

    ``dim`` is the unpadded dimension (it is padded to a power of two here);
    ``max_clients`` (default ``expected_clients``) is the most inputs in one sum.

    Raises:
        DPValueError: an argument is out of range, or ``bits`` is too small for the
            noise and the number of clients: each client's noise share would have
            std below ``MIN_LOCAL_STD`` grid steps (including the case where the
            clients' rounding errors alone would overflow). The message says how
            many bits would do.
    """
    b = check_int("bits", bits, minimum=2)
    d = padded_dim(check_int("dim", dim, minimum=1))
    c = check_positive("clip", clip)
    z = check_positive("noise_multiplier", noise_multiplier)
    e = check_int("expected_clients", expected_clients, minimum=1)
    n = e if max_clients is None else check_int("max_clients", max_clients, minimum=e)
    p = check_open_unit("wrap_prob", wrap_prob)
    if norm_growth not in ("linear", "sqrt"):
        raise DPValueError(f"norm_growth must be 'linear' or 'sqrt', got {norm_growth!r}")
    s_in = z * c / math.sqrt(e)

    def gamma_at(bw: int) -> float:
        k2 = 2.0 * math.log(2.0 * d / p)
        room = 4.0 ** (bw - 1) - k2 * n / 4.0
        if room <= 0.0:
            return math.inf
        return math.sqrt(k2 * (signal_var(norm_growth, n=n, clip=c, dim=d) + n * s_in * s_in) / room)

    gamma = gamma_at(b)
    local = s_in / gamma
    if local < MIN_LOCAL_STD:
        need = next((bw for bw in range(2, 63) if s_in / gamma_at(bw) >= MIN_LOCAL_STD), None)
        hint = f"bits >= {need} would do" if need else "no bit width up to 62 would do"
        raise DPValueError(
            f"bits={b} is too small for noise_multiplier={z:g} with {n} clients at "
            f"wrap_prob={p:g}: each client's noise share would have std {local:.3g} < "
            f"{MIN_LOCAL_STD} grid steps ({hint})"
        )
    return gamma


def signal_var(norm_growth: NormGrowth, *, n: int, clip: float, dim: int) -> float:
    """Variance proxy of one rotated coordinate of a sum of n clipped inputs."""
    grow = n * n if norm_growth == "linear" else n
    return grow * clip * clip / dim


def wrap_bound(*, bits: int, dim: int, proxy: float) -> float:
    """Union bound ``2 d exp(-(2^(bits-1))^2 / (2 proxy))`` over ``dim`` coordinates."""
    half = float(1 << (bits - 1))
    return min(1.0, 2.0 * dim * math.exp(-(half * half) / (2.0 * proxy)))
