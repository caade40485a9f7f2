"""RDP numerics against an independent slow oracle (mpmath quadrature) and dp_accounting."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import dp
from dp._rdp_bounds import rdp_laplace

GRID = [(0.01, 2.5), (1e-4, 0.8), (0.3, 0.5), (0.05, 10.0), (1e-6, 1.0), (0.9, 0.3),
        (0.004, 1.12), (0.001, 0.2)]
ORDERS = [1.01, 1.1, 2.0, 2.5, 10.9]


def _oracle_subsampled_gaussian(q: float, s: float, a: float) -> float:
    """log E_mu0[(mu/mu0)^a] / (a-1), integrating (1+u)^a - 1 - a u at 30 digits."""
    with mp.workdps(30):
        q_, s_, a_ = mp.mpf(q), mp.mpf(s), mp.mpf(a)

        def f(z):  # type: ignore[no-untyped-def]
            u = q_ * (mp.e ** ((2 * z - 1) / (2 * s_ * s_)) - 1)
            return mp.npdf(z, 0, s_) * ((1 + u) ** a_ - 1 - a_ * u)

        am1 = mp.quad(f, [-mp.inf, -5 * s_, 0, 0.5, 1, a_, a_ + 5 * s_, mp.inf])
        return float(mp.log1p(am1) / (a_ - 1))


@pytest.mark.parametrize(("q", "sigma"), GRID)
def test_subsampled_gaussian_matches_mpmath(q: float, sigma: float) -> None:
    ours = dp.rdp_of(dp.round_event(noise_multiplier=sigma, sample_rate=q), np.array(ORDERS))
    oracle = np.array([_oracle_subsampled_gaussian(q, sigma, a) for a in ORDERS])
    np.testing.assert_allclose(ours, oracle, rtol=1e-10)


@pytest.mark.parametrize("b", [0.3, 1.0, 4.0])
def test_laplace_matches_mpmath(b: float) -> None:
    orders = np.array([1.5, 2.0, 7.3])
    ours = rdp_laplace(noise_multiplier=b, orders=orders)
    with mp.workdps(30):
        for a, r in zip(orders, ours, strict=True):
            def f(x, a=a):  # type: ignore[no-untyped-def]
                p = mp.exp(-abs(x) / b) / (2 * b)
                qq = mp.exp(-abs(x - 1) / b) / (2 * b)
                return qq ** a * p ** (1 - a)
            val = mp.quad(f, [-mp.inf, 0, 1, mp.inf])
            assert r == pytest.approx(float(mp.log(val) / (a - 1)), rel=1e-10)


def test_against_dp_accounting_never_looser() -> None:
    rdp_mod = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    orders = np.array(dp.DEFAULT_ORDERS)
    for q, sigma in [(0.01, 2.5), (0.004, 1.12), (0.2, 0.9), (1e-3, 5.0)]:
        ours = dp.rdp_of(dp.round_event(noise_multiplier=sigma, sample_rate=q), orders)
        theirs = np.asarray(rdp_mod._compute_rdp_poisson_subsampled_gaussian(q, sigma, orders))
        ints = orders == np.floor(orders)
        np.testing.assert_allclose(ours[ints], theirs[ints], rtol=1e-8)
        assert np.all(ours <= theirs * (1 + 1e-9))


def test_zhu_wang_bound_is_above_exact_gaussian() -> None:
    orders = np.array([1.5, 2.0, 3.0, 8.0, 20.0])
    for q, sigma in [(0.01, 1.0), (0.2, 2.0)]:
        exact = dp.rdp_of(dp.round_event(noise_multiplier=sigma, sample_rate=q), orders)
        generic = dp.rdp_of(
            dp.PoissonSampled(rate=q, event=dp.DiscreteGaussian(sigma=sigma, sensitivity=1.0)),
            orders)
        assert np.all(generic >= exact * (1 - 1e-12))
        assert np.all(generic < dp.rdp_of(dp.Gaussian(noise_multiplier=sigma), orders))


def test_without_replacement_bounds() -> None:
    orders = np.array([1.5, 2.0, 4.0, 16.0])
    base = dp.Gaussian(noise_multiplier=1.5)
    full = dp.rdp_of(dp.SampledWithoutReplacement(population_size=10, sample_size=10,
                                                  event=base), orders)
    np.testing.assert_allclose(full, dp.rdp_of(base, orders))
    small = dp.rdp_of(dp.SampledWithoutReplacement(population_size=1000, sample_size=10,
                                                   event=base), orders)
    bigger = dp.rdp_of(dp.SampledWithoutReplacement(population_size=1000, sample_size=50,
                                                    event=base), orders)
    assert np.all(small < bigger) and np.all(bigger < full)


def test_base_mechanisms() -> None:
    orders = np.array([2.0, 3.5, math.inf])
    dg = dp.rdp_of(dp.DiscreteGaussian(sigma=2.0, sensitivity=3.0), orders)
    np.testing.assert_allclose(dg[:2], orders[:2] * 9 / 8)
    sk = dp.rdp_of(dp.Skellam(mu=50.0, l1_sensitivity=4.0, l2_sensitivity=2.0), orders)
    # alpha D2^2/(4 mu) + min(((2 alpha - 1) D2^2 + 6 D1)/(16 mu^2), 3 D1/(4 mu)), ceil order
    want2 = 2 * 4 / 200 + min((12 + 24) / (16 * 2500), 12 / 200)
    assert sk[0] == pytest.approx(want2)
    assert sk[1] >= sk[0] and math.isinf(sk[2])
    lap = dp.rdp_of(dp.Laplace(noise_multiplier=2.0), orders)
    assert lap[2] == pytest.approx(0.5) and np.all(np.diff(lap) > 0)


def test_skellam_agrees_with_the_distributed_dp_module() -> None:
    from dp._distributed_rdp import skellam_rdp

    orders = np.array([1.5, 2.0, 7.0, 30.0])
    ours = dp.rdp_of(dp.Skellam(mu=40.0, l1_sensitivity=9.0, l2_sensitivity=3.0), orders)
    np.testing.assert_allclose(ours, skellam_rdp(orders, l2=3.0, l1=9.0, variance=80.0))


def test_never_looser_than_opacus() -> None:
    op = pytest.importorskip("opacus.accountants.analysis.rdp")
    for q, sigma, steps in [(0.04, 1.5, 2250), (256 / 60000, 1.12, 14063), (0.3, 0.8, 50)]:
        alphas = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
        rdp = op.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=alphas)
        theirs = op.get_privacy_spent(orders=alphas, rdp=rdp, delta=1e-5)[0]
        ours = dp.account(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5).epsilon
        assert ours <= theirs * (1 + 1e-9)


def _oracle_wor_gaussian(q: float, z: float, alpha: int) -> float:
    """WBK 2019 Thm. 27 for the Gaussian at an integer order, forward differences of
    ``e^{x(x-1)/(2 z^2)}`` as exact alternating sums at 300 digits."""
    with mp.workdps(300):
        q_, z_ = mp.mpf(q), mp.mpf(z)

        def d(n: int) -> mp.mpf:
            return mp.fsum(mp.binomial(n, k) * (-1) ** (n - k)
                           * mp.e ** (mp.mpf(k * (k - 1)) / (2 * z_ * z_)) for k in range(n + 1))

        e2 = 1 / z_**2
        a = 1 + q_**2 * mp.binomial(alpha, 2) * min(4 * mp.expm1(e2), 2 * mp.e**e2)
        for j in range(3, alpha + 1):
            t = min(4 * mp.sqrt(d(2 * (j // 2)) * d(2 * ((j + 1) // 2))),
                    2 * mp.e ** (mp.mpf((j - 1) * j) / (2 * z_ * z_)))
            a += q_**j * mp.binomial(alpha, j) * t
        return float(mp.log(a) / (alpha - 1))


@pytest.mark.parametrize(("q", "z", "alpha"),
                         [(0.3, 4.0, 20), (0.3, 1000.0, 63), (0.01, 50.0, 40), (0.5, 0.7, 12)])
def test_without_replacement_gaussian_matches_theorem_27_oracle(
    q: float, z: float, alpha: int
) -> None:
    """Sampling without replacement of the Gaussian uses Theorem 27 (as dp_accounting),
    not only Theorem 9, whose ``2 e^{(j-1) eps(j)}`` terms never vanish as the noise grows;
    and it stays exact where dp_accounting 0.6's float differences overstate (z = 1000)."""
    got = dp.rdp_of(dp.SampledWithoutReplacement(
        population_size=1000, sample_size=round(q * 1000), event=dp.Gaussian(noise_multiplier=z)),
        np.array([float(alpha)]))[0]
    want = _oracle_wor_gaussian(q, z, alpha)
    assert want <= got <= want * (1 + 1e-8)


def test_without_replacement_epsilon_vanishes_with_noise() -> None:
    eps = [dp.RdpAccountant().compose(dp.SampledWithoutReplacement(
        population_size=10, sample_size=3, event=dp.Gaussian(noise_multiplier=z)), 100
    ).get_epsilon(1e-5) for z in (8.0, 100.0, 1e4)]
    assert eps[0] == pytest.approx(3.5288611508807017, rel=1e-8)  # dp_accounting 0.6
    assert eps[0] > eps[1] > eps[2] and eps[2] < 0.05  # Theorem 9 alone: 7.43 at any z
    cal = dp.calibrate_noise(target_epsilon=2.0, delta=1e-5, sample_rate=0.3, steps=100,
                             sampling="fixed", population_size=10)
    assert 10.0 < cal.noise_multiplier < 20.0 and cal.epsilon <= 2.0
