"""Statistical tests of the noise samplers.

Every test draws from a fixed seed, so its outcome is deterministic (it cannot
flake); the thresholds are set so that a correct sampler passes for all but a
vanishing fraction of seeds (p-values below 1e-6 fail), while a wrong scale,
a missing sign or an off-by-one in the support fails by a wide margin.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import dp

N = 200_000


def _chi2_pvalue(observed: np.ndarray, expected: np.ndarray) -> float:
    """Pearson chi-square p-value after merging bins with expected count < 5."""
    obs, exp = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= 5.0:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    obs[-1] += acc_o
    exp[-1] += acc_e
    o_arr, e_arr = np.array(obs), np.array(exp)
    stat = float(np.sum((o_arr - e_arr) ** 2 / e_arr))
    dof = len(o_arr) - 1
    return float(mpmath.gammainc(dof / 2.0, stat / 2.0, mpmath.inf, regularized=True))


def _dgauss_pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    w = np.exp(-(support.astype(np.float64) ** 2) / (2 * sigma**2))
    wide = np.arange(-int(60 * sigma) - 60, int(60 * sigma) + 61)
    return w / np.exp(-(wide.astype(np.float64) ** 2) / (2 * sigma**2)).sum()


def _pmf_test(samples: np.ndarray, pmf_on: np.ndarray, support: np.ndarray) -> float:
    counts = np.array([np.count_nonzero(samples == k) for k in support], dtype=np.float64)
    inside = counts.sum()
    outside = samples.size - inside
    expected = pmf_on * samples.size
    observed = np.append(counts, outside)
    expected = np.append(expected, samples.size - expected.sum())
    return _chi2_pvalue(observed, np.maximum(expected, 1e-300))


@pytest.mark.parametrize("sigma", [0.3, 0.8, 1.0, 2.5, 7.0])
def test_discrete_gaussian_matches_exact_pmf(sigma: float) -> None:
    rng = np.random.default_rng(1000 + int(sigma * 10))
    x = dp.discrete_gaussian_noise(rng, sigma=sigma, size=N)
    assert x.dtype == np.int64 and x.shape == (N,)
    half = int(8 * sigma) + 2
    support = np.arange(-half, half + 1)
    assert _pmf_test(x, _dgauss_pmf(sigma, support), support) > 1e-6


def test_discrete_gaussian_rejects_a_wrong_scale() -> None:
    # The same chi-square test must fail for a sampler off by 5% in sigma.
    rng = np.random.default_rng(7)
    x = dp.discrete_gaussian_noise(rng, sigma=2.1, size=N)
    support = np.arange(-20, 21)
    assert _pmf_test(x, _dgauss_pmf(2.0, support), support) < 1e-6


@pytest.mark.parametrize("sigma", [1.0, 30.0, 1e4])
def test_discrete_gaussian_moments_and_tails(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma) + 17)
    x = dp.discrete_gaussian_noise(rng, sigma=sigma, size=N).astype(np.float64)
    # The variance of N_Z(0, s^2) equals s^2 up to 1e-8 relative for s >= 1.
    se_var = sigma**2 * math.sqrt(2.0 / N)
    assert abs(x.mean()) < 6 * sigma / math.sqrt(N)
    assert abs(x.var() - sigma**2) < 6 * se_var
    # Two-sided tails beyond 2 and 3 sigma against the exact discrete pmf.
    wide = np.arange(-int(12 * sigma) - 5, int(12 * sigma) + 6)
    pmf = _dgauss_pmf(sigma, wide)
    for k in (2, 3):
        p = float(pmf[np.abs(wide) > k * sigma].sum())
        tail = float(np.mean(np.abs(x) > k * sigma))
        assert abs(tail - p) < 6 * math.sqrt(p * (1 - p) / N)


def test_discrete_gaussian_shape_and_determinism() -> None:
    a = dp.discrete_gaussian_noise(np.random.default_rng(5), sigma=3.0, size=(4, 5, 6))
    b = dp.discrete_gaussian_noise(np.random.default_rng(5), sigma=3.0, size=(4, 5, 6))
    assert a.shape == (4, 5, 6)
    np.testing.assert_array_equal(a, b)
    assert dp.discrete_gaussian_noise(np.random.default_rng(5), sigma=3.0, size=0).shape == (0,)


@pytest.mark.parametrize("scale", [0.7, 3.0])
def test_discrete_laplace_matches_exact_pmf(scale: float) -> None:
    rng = np.random.default_rng(int(scale * 100))
    x = dp.discrete_laplace_noise(rng, scale=scale, size=N)
    support = np.arange(-int(15 * scale) - 2, int(15 * scale) + 3)
    q = math.exp(-1 / scale)
    pmf = (1 - q) / (1 + q) * q ** np.abs(support)
    assert _pmf_test(x, pmf, support) > 1e-6


@pytest.mark.parametrize("mu", [0.5, 3.0, 40.0])
def test_skellam_matches_exact_pmf(mu: float) -> None:
    rng = np.random.default_rng(int(mu * 10) + 3)
    x = dp.skellam_noise(rng, mu=mu, size=N)
    assert x.dtype == np.int64
    # Exact pmf of Poisson(mu) - Poisson(mu) by convolution.
    kmax = int(2 * mu + 12 * math.sqrt(2 * mu) + 20)
    k = np.arange(kmax + 1)
    lam = mu
    pois = np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(i + 1) for i in k]))
    full = np.convolve(pois, pois[::-1])  # index j <-> value j - kmax
    half = int(6 * math.sqrt(2 * mu)) + 3
    support = np.arange(-half, half + 1)
    assert _pmf_test(x, full[support + kmax], support) > 1e-6


def test_skellam_moments_at_large_mu() -> None:
    mu = 1e8  # Sk(mu, mu) has variance 2 mu
    x = dp.skellam_noise(np.random.default_rng(11), mu=mu, size=N).astype(np.float64)
    assert abs(x.mean()) < 6 * math.sqrt(2 * mu / N)
    assert abs(x.var() / (2 * mu) - 1) < 6 * math.sqrt(2 / N)


@pytest.mark.parametrize("sigma", [0.01, 2.0, 1e6])
def test_gaussian_moments(sigma: float) -> None:
    x = dp.gaussian_noise(np.random.default_rng(3), sigma=sigma, size=N)
    assert abs(x.mean()) < 6 * sigma / math.sqrt(N)
    assert abs(x.var() / sigma**2 - 1) < 6 * math.sqrt(2 / N)


def test_laplace_moments_and_tail() -> None:
    b = 1.5
    x = dp.laplace_noise(np.random.default_rng(4), scale=b, size=N)
    assert abs(x.mean()) < 6 * b * math.sqrt(2 / N)
    # Var = 2 b^2; the sample variance of a Laplace has relative s.e. sqrt(5/N).
    assert abs(x.var() / (2 * b * b) - 1) < 6 * math.sqrt(5 / N)
    p = math.exp(-3)  # P(|X| > 3b)
    assert abs(np.mean(np.abs(x) > 3 * b) - p) < 6 * math.sqrt(p * (1 - p) / N)


def test_secure_generator_is_fresh() -> None:
    g1, g2 = dp.secure_generator(), dp.secure_generator()
    assert isinstance(g1, np.random.Generator)
    assert not np.array_equal(g1.integers(0, 2**63, 4), g2.integers(0, 2**63, 4))
    assert dp.discrete_gaussian_noise(g1, sigma=2.0, size=3).shape == (3,)


SAMPLERS = [
    (dp.gaussian_noise, "sigma"),
    (dp.laplace_noise, "scale"),
    (dp.discrete_laplace_noise, "scale"),
    (dp.discrete_gaussian_noise, "sigma"),
    (dp.skellam_noise, "mu"),
]


@pytest.mark.parametrize(("sampler", "arg"), SAMPLERS)
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_noise_parameter_names_the_argument(sampler, arg, bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dp.DPValueError, match=arg):
        sampler(np.random.default_rng(0), **{arg: bad, "size": 3})


@pytest.mark.parametrize(("sampler", "arg"), SAMPLERS)
def test_bad_rng_and_size_are_refused(sampler, arg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="rng"):
        sampler(np.random.RandomState(0), **{arg: 1.0, "size": 3})
    with pytest.raises(dp.DPValueError, match="size"):
        sampler(np.random.default_rng(0), **{arg: 1.0, "size": -1})
    with pytest.raises(dp.DPValueError, match="size"):
        sampler(np.random.default_rng(0), **{arg: 1.0, "size": 2.5})
