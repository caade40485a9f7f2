"""Distributed DP for secure sums: discrete Gaussian (KLS 2021) and Skellam (ALK 2021).

Each client turns its float update into integers mod 2^bits that already carry its
share of the noise; SecAgg+ sums them mod 2^bits; the server decodes the sum. No
party, the server included, ever sees an un-noised sum.

Client, :func:`encode_client`::

    x --clip L2 to c--> --pad to 2^k, rotate H D (public seed)--> --scale by 1/gamma-->
      --conditional stochastic rounding (retry until norm <= Delta2)-->
      --+ noise share (N_Z(0, s^2) or Sk(s^2/2, s^2/2))--> --mod 2^bits--> uint32/uint64

Server, :func:`decode_sum`: reduce mod 2^bits, centre into [-2^(bits-1), 2^(bits-1)),
multiply by gamma, rotate back with ``D H``, drop the padding.

Each client's noise share has std ``s = z c / (gamma sqrt(E))`` in integer units
(z the noise multiplier, c the clip, E ``expected_clients``), so a sum over E
clients carries noise of std ``z c`` in input units. With fewer survivors there is
less noise: the accounting (:func:`distributed_rdp`) covers every survivor count
from ``min_clients`` (the least the SecAgg+ threshold lets the server unmask) to
``max_clients``, and the rounding's inflation of the sensitivity. Modular
wrap-around happens after the noise is added, so it is post-processing and costs
no privacy; it only hurts accuracy, and gamma is chosen so it is rare
(:func:`wrap_probability_bound`).

Gamma (the grid step) is chosen by :func:`~dp._granularity.choose_gamma` so that
the sum wraps with probability at most ``wrap_prob`` even when every client sends
the same vector; see that module for the derivation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dp._argcheck import check_finite_array, check_int, check_open_unit, check_positive, check_rng
from dp._clipping import clip_l2
from dp._distributed_rdp import (
    dgauss_sum_rdp,
    dgauss_sum_rdp_worst,
    rounded_l1_bound,
    rounded_l2_bound,
    skellam_rdp,
)
from dp._errors import DPError, DPValueError
from dp._granularity import NormGrowth, choose_gamma, signal_var, wrap_bound
from dp._mechanisms import discrete_gaussian_noise, skellam_noise
from dp._rdp import DEFAULT_ORDERS, rdp_to_epsilon
from dp._rotation import SharedSeed, padded_dim, rotate, unrotate

__all__ = [
    "Mechanism",
    "DistributedDPConfig",
    "encode_client",
    "decode_sum",
    "conditional_round",
    "noise_std_target",
    "rounding_std_bound",
    "wrap_probability_bound",
    "distributed_rdp",
    "distributed_epsilon",
]

Mechanism = Literal["dgauss", "skellam"]
_MAX_ROUNDING_TRIES = 1000
_MAX_SKELLAM_MU = 1e18  # NumPy's Poisson sampler limit


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributedDPConfig:
    """Everything clients and server must agree on for one distributed-DP sum.

    Given: ``dim`` (length of the flat update), ``bits`` (the SecAgg+ modulus is
    2^bits, 2 <= bits <= 62), ``clip`` (L2 bound c), ``noise_multiplier`` (z: the
    noise of a sum over ``expected_clients`` has std z c in input units),
    ``expected_clients`` (E), ``min_clients`` (the fewest survivors the SecAgg+
    threshold lets the server unmask; the accountant assumes this many),
    ``max_clients`` (most clients whose inputs can be in one sum; defaults to E),
    ``mechanism`` (``"dgauss"`` or ``"skellam"``), ``beta`` (conditional rounding,
    in [0, 1); 0 disables it), ``wrap_prob`` (target bound on the probability that
    some coordinate of the sum wraps around the modulus) and ``norm_growth``
    (``"linear"`` or ``"sqrt"``, see the module docstring).

    Derived in ``__post_init__``: ``padded_dim`` (next power of two), ``gamma``
    (the grid step in input units), ``local_std`` (each client's noise parameter
    in integer units) and ``l2_bound`` (Delta2: the L2 sensitivity in integer
    units after conditional rounding, which is also the rounding's retry bound).

    Raises:
        DPValueError: from ``__post_init__`` naming the field: a non-integer or
            too small count, ``min_clients > expected_clients``,
            ``max_clients < expected_clients``, a non-positive or non-finite
            ``clip``/``noise_multiplier``, ``beta`` outside [0, 1), ``wrap_prob``
            outside (0, 1), an unknown mechanism or norm growth, ``bits`` outside
            [2, 62], ``bits`` too small for the noise and the number of clients
            (the message says how many bits would do), or, for skellam, so large
            that a noise share's variance exceeds 2e18.
    """

    dim: int
    bits: int
    clip: float
    noise_multiplier: float
    expected_clients: int
    min_clients: int
    max_clients: int | None = None
    mechanism: Mechanism = "dgauss"
    beta: float = math.exp(-0.5)
    wrap_prob: float = 1e-6
    norm_growth: NormGrowth = "linear"
    padded_dim: int = field(init=False)
    gamma: float = field(init=False)
    local_std: float = field(init=False)
    l2_bound: float = field(init=False)

    def __post_init__(self) -> None:
        check_int("dim", self.dim, minimum=1)
        check_int("bits", self.bits, minimum=2)
        if self.bits > 62:
            raise DPValueError(f"bits must be <= 62, got {self.bits}")
        check_positive("clip", self.clip)
        check_positive("noise_multiplier", self.noise_multiplier)
        e = check_int("expected_clients", self.expected_clients, minimum=1)
        m = check_int("min_clients", self.min_clients, minimum=1)
        if m > e:
            raise DPValueError(f"min_clients must be <= expected_clients ({e}), got {m}")
        if self.max_clients is not None:
            check_int("max_clients", self.max_clients, minimum=e)
        if self.mechanism not in ("dgauss", "skellam"):
            raise DPValueError(f"mechanism must be 'dgauss' or 'skellam', got {self.mechanism!r}")
        if self.norm_growth not in ("linear", "sqrt"):
            raise DPValueError(f"norm_growth must be 'linear' or 'sqrt', got {self.norm_growth!r}")
        if not (isinstance(self.beta, int | float) and 0.0 <= self.beta < 1.0):
            raise DPValueError(f"beta must be in [0, 1), got {self.beta!r}")
        check_open_unit("wrap_prob", self.wrap_prob)
        d = padded_dim(self.dim)
        gamma = choose_gamma(
            bits=self.bits, dim=self.dim, clip=self.clip, noise_multiplier=self.noise_multiplier,
            expected_clients=e, max_clients=self.max_clients, wrap_prob=self.wrap_prob,
            norm_growth=self.norm_growth,
        )
        local = self.noise_multiplier * self.clip / (gamma * math.sqrt(e))
        if self.mechanism == "skellam" and local * local / 2.0 > _MAX_SKELLAM_MU:
            raise DPValueError(
                f"bits={self.bits} is too large for skellam: each client's share would have "
                f"variance {local * local:.3g} > {2 * _MAX_SKELLAM_MU:g}, beyond exact Poisson "
                f"sampling; lower bits"
            )
        object.__setattr__(self, "padded_dim", d)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "local_std", local)
        object.__setattr__(
            self, "l2_bound", rounded_l2_bound(l2=self.clip / gamma, beta=self.beta, dim=d)
        )

    @property
    def client_bound(self) -> int:
        """The most clients whose inputs can be in one sum (``max_clients`` or E)."""
        return self.expected_clients if self.max_clients is None else self.max_clients

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """``numpy.uint32`` for bits <= 32, else ``numpy.uint64``."""
        return np.uint32 if self.bits <= 32 else np.uint64


def encode_client(
    x: np.ndarray, cfg: DistributedDPConfig, shared_seed: SharedSeed, rng: np.random.Generator
) -> np.ndarray:
    """One client's noisy, rounded, rotated update as integers in [0, 2^bits).

    ``x`` is the flat float update of length ``cfg.dim`` (it is clipped here);
    ``shared_seed`` is the round's public rotation seed, the same for every client
    and the server; ``rng`` supplies the rounding and the noise (use
    :func:`~dp.secure_generator` for real users). Returns ``cfg.padded_dim``
    values of dtype ``cfg.dtype``.

    Raises:
        TypeError: ``rng`` is not a Generator.
        DPValueError: ``x`` is not 1-D of length ``cfg.dim`` or holds NaN/inf;
            ``shared_seed`` is not an int in [0, 2**256) or non-empty bytes.
        DPError: conditional rounding failed 1000 times in a row (probability
            below beta^1000).
    """
    check_rng(rng)
    v = check_finite_array("x", x)
    if v.ndim != 1 or v.shape[0] != cfg.dim:
        raise DPValueError(f"x must be 1-D of length dim={cfg.dim}, got shape {v.shape}")
    clipped = clip_l2([v], clip=cfg.clip).update[0]
    scaled = rotate(clipped, shared_seed) / cfg.gamma
    ints = conditional_round(scaled, bound=cfg.l2_bound, rng=rng)
    if cfg.mechanism == "dgauss":
        ints += discrete_gaussian_noise(rng, sigma=cfg.local_std, size=ints.shape[0])
    else:
        ints += skellam_noise(rng, mu=cfg.local_std**2 / 2.0, size=ints.shape[0])
    wrapped = ints & np.int64((1 << cfg.bits) - 1)
    return wrapped.astype(cfg.dtype)


def decode_sum(
    total_mod: np.ndarray, cfg: DistributedDPConfig, shared_seed: SharedSeed, num_survivors: int
) -> np.ndarray:
    """The noisy sum of the survivors' clipped updates, in input units (float64).

    ``total_mod`` is the sum of the survivors' encodings modulo 2^bits, or modulo
    any larger power of two up to 2^64 (it is reduced here); any integer dtype.
    ``num_survivors`` is how many clients' inputs it holds.

    Raises:
        DPValueError: ``total_mod`` is not an integer array of shape
            ``(cfg.padded_dim,)``; ``num_survivors`` is below ``cfg.min_clients``
            (the noise is then less than the accountant assumed: discard the
            round) or above ``cfg.client_bound`` (gamma was not chosen for it).
    """
    arr = np.asarray(total_mod)
    if arr.dtype.kind not in "iu" or arr.shape != (cfg.padded_dim,):
        raise DPValueError(
            f"total_mod must be an integer array of shape ({cfg.padded_dim},), "
            f"got {arr.dtype} {arr.shape}"
        )
    n = check_int("num_survivors", num_survivors, minimum=1)
    if not cfg.min_clients <= n <= cfg.client_bound:
        raise DPValueError(
            f"num_survivors must be in [min_clients={cfg.min_clients}, "
            f"{cfg.client_bound}], got {n}"
        )
    words = arr.astype(np.uint64) if arr.dtype.kind == "u" else arr.astype(np.int64).view(np.uint64)
    reduced = (words & np.uint64((1 << cfg.bits) - 1)).astype(np.int64)
    half = 1 << (cfg.bits - 1)
    centred = np.where(reduced >= half, reduced - (1 << cfg.bits), reduced)
    return unrotate(centred.astype(np.float64) * cfg.gamma, shared_seed, cfg.dim)


def conditional_round(y: np.ndarray, *, bound: float, rng: np.random.Generator) -> np.ndarray:
    """Stochastic rounding of ``y`` to int64, retried until ``||.||_2 <= bound``.

    Each coordinate rounds up with probability equal to its fractional part
    (unbiased); rejecting the rare draws above the bound adds a small bias towards
    shorter vectors (a try fails with probability at most beta). With ``bound``
    from :func:`~dp._distributed_rdp.rounded_l2_bound` a try succeeds with
    probability at least ``1 - beta``; all coordinates are drawn at once per try.

    Raises:
        DPError: 1000 tries in a row exceeded the bound.
    """
    low = np.floor(y)
    frac = y - low
    limit = bound * bound
    for _ in range(_MAX_ROUNDING_TRIES):
        r = low + (rng.random(y.shape) < frac)
        if float(np.sum(np.square(r))) <= limit:  # not np.dot (threaded BLAS)
            return r.astype(np.int64)
    raise DPError(f"conditional rounding failed {_MAX_ROUNDING_TRIES} times (bound {bound:g})")


def noise_std_target(cfg: DistributedDPConfig, *, num_clients: int | None = None) -> float:
    """Std of the DP noise in each coordinate of the decoded sum, in input units.

    For a sum over ``num_clients`` survivors (default ``cfg.min_clients``, what the
    accountant assumes; pass E for the no-dropout figure). The rotation is
    orthogonal, so the per-coordinate noise is the same before and after it. For
    ``dgauss`` this is the exact variance of N_Z(0, local_std^2), a little below
    local_std^2 when local_std < 1. Rounding adds at most
    :func:`rounding_std_bound` on top.

    Raises:
        DPValueError: ``num_clients`` < 1.
    """
    n = cfg.min_clients if num_clients is None else check_int("num_clients", num_clients, minimum=1)
    var = cfg.local_std**2
    if cfg.mechanism == "dgauss":
        var = _dgauss_variance(cfg.local_std)
    return math.sqrt(n * var) * cfg.gamma


def rounding_std_bound(cfg: DistributedDPConfig, *, num_clients: int | None = None) -> float:
    """Upper bound on the per-coordinate std of the rounding error in the sum.

    Each client's rounding error per coordinate lies in (-1, 1) with variance at
    most 1/4 grid steps squared, so ``gamma sqrt(n) / 2`` in input units.
    """
    n = cfg.min_clients if num_clients is None else check_int("num_clients", num_clients, minimum=1)
    return cfg.gamma * math.sqrt(n) / 2.0


def wrap_probability_bound(cfg: DistributedDPConfig, *, num_clients: int | None = None) -> float:
    """Sub-Gaussian bound on P(some coordinate of the sum wraps around 2^bits).

    For ``num_clients`` summed inputs (default ``cfg.client_bound``) under the
    config's ``norm_growth`` model; at the default it is at most ``cfg.wrap_prob``.
    Rounding errors are bounded (proxy 1/4 each) and discrete Gaussians are
    sub-Gaussian; Skellam shares are treated as sub-Gaussian with their variance,
    which is accurate for the large variances used here (its far tails are
    sub-exponential). Wrapping is post-processing of a noised sum: it costs
    accuracy, never privacy.
    """
    n = cfg.client_bound if num_clients is None else check_int("num_clients", num_clients, minimum=1)
    d = cfg.padded_dim
    sig = signal_var(cfg.norm_growth, n=n, clip=cfg.clip, dim=d)
    proxy = sig / cfg.gamma**2 + n * cfg.local_std**2 + n / 4.0
    return wrap_bound(bits=cfg.bits, dim=d, proxy=proxy)


def distributed_rdp(
    cfg: DistributedDPConfig,
    *,
    orders: tuple[float, ...] | np.ndarray = DEFAULT_ORDERS,
    num_survivors: int | None = None,
) -> np.ndarray:
    """Per-round RDP at ``orders`` of the distributed mechanism, honest about dropouts.

    By default this is the worst case over every number of survivors the
    protocol can unmask, ``cfg.min_clients`` to ``cfg.client_bound``: for
    ``skellam`` that is ``min_clients`` (the least noise); for ``dgauss`` the KLS
    tau term grows with the number of summed discrete Gaussians, so the maximum is
    taken over the whole range. Pass ``num_survivors`` for one exact count.

    Sensitivity includes the rounding: Delta2 = ``cfg.l2_bound`` and
    Delta1 = ``Delta2 min(sqrt(d), Delta2)`` in integer units, d the padded
    dimension, for add/remove-one-client adjacency (replace-one doubles both).
    ``dgauss``: KLS 2021 with the tau term; ``skellam``: ALK 2021 with variance
    ``survivors * local_std^2``. Composition over rounds adds RDP (multiply by the
    number of rounds); no amplification by client sampling is applied.

    Raises:
        DPValueError: a bad order, or ``num_survivors`` < 1.
    """
    l2 = cfg.l2_bound
    l1 = rounded_l1_bound(l2=l2, dim=cfg.padded_dim)
    d = cfg.padded_dim
    if num_survivors is not None:
        m = check_int("num_survivors", num_survivors, minimum=1)
        if cfg.mechanism == "dgauss":
            return dgauss_sum_rdp(orders, l2=l2, l1=l1, sigma=cfg.local_std, num_clients=m, dim=d)
        return skellam_rdp(orders, l2=l2, l1=l1, variance=m * cfg.local_std**2)
    if cfg.mechanism == "dgauss":
        return dgauss_sum_rdp_worst(
            orders, l2=l2, l1=l1, sigma=cfg.local_std, min_clients=cfg.min_clients,
            max_clients=cfg.client_bound, dim=d,
        )
    return skellam_rdp(orders, l2=l2, l1=l1, variance=cfg.min_clients * cfg.local_std**2)


def distributed_epsilon(
    cfg: DistributedDPConfig,
    *,
    delta: float,
    rounds: int = 1,
    orders: tuple[float, ...] | np.ndarray = DEFAULT_ORDERS,
    num_survivors: int | None = None,
) -> tuple[float, float]:
    """(epsilon, best order) after ``rounds`` rounds at ``delta``, via RDP.

    Raises:
        DPValueError: ``delta`` not in (0, 1), ``rounds`` < 1, or as
            :func:`distributed_rdp`.
    """
    t = check_int("rounds", rounds, minimum=1)
    rdp = distributed_rdp(cfg, orders=orders, num_survivors=num_survivors)
    eps, order = rdp_to_epsilon(np.asarray(orders, dtype=np.float64), t * rdp, delta)
    return float(eps), float(order)


def _dgauss_variance(sigma: float) -> float:
    """Exact variance of N_Z(0, sigma^2) (equal to sigma^2 to 1e-12 above sigma = 2)."""
    if sigma >= 2.0:
        return sigma * sigma
    y = np.arange(-60, 61, dtype=np.float64)
    w = np.exp(-(y * y) / (2.0 * sigma * sigma))
    return float(np.sum(y * y * w) / np.sum(w))
