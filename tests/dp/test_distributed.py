"""Distributed DP (discrete Gaussian and Skellam over a modular sum): math, statistics, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dp
from dp._rdp import DEFAULT_ORDERS, rdp_to_epsilon
from dp._rotation import fwht, padded_dim, rotate, rotation_signs, unrotate

MECHS = ["dgauss", "skellam"]


def _cfg(**kw) -> dp.DistributedDPConfig:  # type: ignore[no-untyped-def]
    base = {
        "dim": 250,
        "bits": 16,
        "clip": 1.0,
        "noise_multiplier": 1.0,
        "expected_clients": 20,
        "min_clients": 15,
    }
    return dp.DistributedDPConfig(**{**base, **kw})


def _run(cfg, xs, seed, rng, survivors=None):  # type: ignore[no-untyped-def]
    """Encode every client, sum the survivors mod 2^64 like a uint64 SecAgg, decode."""
    who = range(len(xs)) if survivors is None else survivors
    total = np.zeros(cfg.padded_dim, dtype=np.uint64)
    for i in who:
        enc = dp.encode_client(xs[i], cfg, seed, rng)
        assert enc.dtype == cfg.dtype and enc.shape == (cfg.padded_dim,)
        assert int(enc.max()) < 2**cfg.bits
        total += enc.astype(np.uint64)
    return dp.decode_sum(total, cfg, seed, len(list(who)))


# --- the rotation -----------------------------------------------------------------


def _sylvester(d: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h / math.sqrt(d)


@pytest.mark.parametrize("d", [1, 2, 8, 64])
def test_fwht_is_the_orthogonal_symmetric_hadamard_matrix(d: int) -> None:
    h = fwht(np.eye(d))  # row i is the transform of e_i, i.e. column i of H
    np.testing.assert_allclose(h, _sylvester(d), atol=1e-12)
    np.testing.assert_allclose(h @ h.T, np.eye(d), atol=1e-12)
    np.testing.assert_allclose(fwht(fwht(np.eye(d))), np.eye(d), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(dim=st.integers(1, 3000), seed=st.integers(0, 2**256 - 1))
def test_rotation_preserves_norm_and_inverts(dim: int, seed: int) -> None:
    x = np.random.default_rng(dim).normal(size=dim)
    y = rotate(x, seed)
    assert y.shape == (padded_dim(dim),)
    assert np.linalg.norm(y) == pytest.approx(np.linalg.norm(x), rel=1e-12)
    np.testing.assert_allclose(unrotate(y, seed, dim), x, atol=1e-10)


def test_rotation_signs_are_deterministic_and_seed_separated() -> None:
    a = rotation_signs(7, 1024)
    np.testing.assert_array_equal(a, rotation_signs(7, 1024))
    assert set(np.unique(a)) == {-1.0, 1.0}
    assert abs(a.mean()) < 0.2
    assert not np.array_equal(a, rotation_signs(8, 1024))
    assert not np.array_equal(a, rotation_signs(b"\x07", 1024))
    np.testing.assert_array_equal(rotation_signs(b"k" * 32, 100), rotation_signs(b"k" * 32, 200)[:100])
    with pytest.raises(dp.DPValueError, match="shared_seed"):
        rotation_signs(-1, 8)
    with pytest.raises(dp.DPValueError, match="power-of-two"):
        fwht(np.ones(6))


def test_rotation_spreads_a_spike() -> None:
    x = np.zeros(1000)
    x[3] = 1.0
    y = rotate(x, 99)
    np.testing.assert_allclose(np.abs(y), 1 / math.sqrt(1024))


# --- roundtrip and noise ----------------------------------------------------------


@pytest.mark.parametrize("mech", MECHS)
def test_roundtrip_recovers_the_clipped_sum(mech: str) -> None:
    rng = np.random.default_rng(1)
    cfg = _cfg(mechanism=mech, bits=40, noise_multiplier=1e-4, dim=300)
    xs = rng.normal(size=(20, 300)) * 0.1
    xs[0] *= 100.0  # far above the clip: must enter the sum clipped to norm 1
    clipped = xs / np.maximum(1.0, np.linalg.norm(xs, axis=1, keepdims=True))
    out = _run(cfg, xs, 2024, rng)
    assert out.dtype == np.float64 and out.shape == (300,)
    n = 20
    bound = 6 * math.hypot(dp.noise_std_target(cfg, num_clients=n), dp.rounding_std_bound(cfg, num_clients=n))
    assert np.max(np.abs(out - clipped.sum(0))) < bound
    assert bound < 1e-3  # the test is tight: the clipped sum is ~O(1)


@pytest.mark.parametrize("mech", MECHS)
def test_roundtrip_at_a_small_modulus_with_uint32_words(mech: str) -> None:
    rng = np.random.default_rng(2)
    cfg = _cfg(mechanism=mech, bits=12, noise_multiplier=0.5)
    xs = rng.normal(size=(20, 250))
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    total = np.zeros(cfg.padded_dim, dtype=np.uint32)
    for x in xs:
        total += dp.encode_client(x, cfg, 5, rng)  # wraps mod 2^32, a multiple of 2^12
    out = dp.decode_sum(total, cfg, 5, 20)
    target = math.hypot(dp.noise_std_target(cfg, num_clients=20), dp.rounding_std_bound(cfg, num_clients=20))
    assert np.std(out - xs.sum(0)) < 1.2 * target
    assert np.max(np.abs(out - xs.sum(0))) < 6 * target


@pytest.mark.parametrize("mech", MECHS)
def test_aggregate_noise_matches_the_target(mech: str) -> None:
    # Zero inputs round exactly, so the error of the sum is the DP noise alone.
    rng = np.random.default_rng(3)
    cfg = _cfg(mechanism=mech, dim=8192, bits=20, noise_multiplier=0.8, expected_clients=10, min_clients=6)
    xs = np.zeros((10, 8192))
    for survivors, n in [(None, 10), (range(6), 6)]:
        out = _run(cfg, xs, 11, rng, survivors)
        target = dp.noise_std_target(cfg, num_clients=n)
        se = math.sqrt(2.0 / out.size)  # relative s.e. of a Gaussian sample std is sqrt(1/2N)
        assert abs(out.std() / target - 1) < 6 * se
    # With no dropout the noise is z * c; the accountant assumes min_clients of 10.
    assert dp.noise_std_target(cfg, num_clients=10) == pytest.approx(0.8, rel=1e-9)
    assert dp.noise_std_target(cfg) == pytest.approx(0.8 * math.sqrt(0.6), rel=1e-9)


@pytest.mark.parametrize("mech", MECHS)
def test_noise_with_data_and_dropout_is_never_below_the_accounted_noise(mech: str) -> None:
    rng = np.random.default_rng(4)
    cfg = _cfg(mechanism=mech, dim=4000, bits=14, noise_multiplier=1.0)
    xs = rng.normal(size=(20, 4000))
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    for survivors in [range(20), range(15)]:
        out = _run(cfg, xs, 8, rng, survivors)
        n = len(survivors)
        err = out - xs[list(survivors)].sum(0)
        upper = math.hypot(dp.noise_std_target(cfg, num_clients=n), dp.rounding_std_bound(cfg, num_clients=n))
        assert dp.noise_std_target(cfg) * (1 - 0.07) <= err.std() <= upper * 1.07


def test_encode_is_deterministic_given_the_generator() -> None:
    cfg = _cfg()
    x = np.linspace(-1, 1, 250) / 10
    a = dp.encode_client(x, cfg, 1, np.random.default_rng(9))
    b = dp.encode_client(x, cfg, 1, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


# --- conditional rounding ---------------------------------------------------------


def test_conditional_rounding_is_bounded_and_nearly_unbiased() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=64) * 3
    bound = dp.rounded_l2_bound(l2=float(np.linalg.norm(y)), beta=math.exp(-0.5), dim=64)
    draws = np.array([dp.conditional_round(y, bound=bound, rng=rng) for _ in range(4000)])
    assert np.all(np.linalg.norm(draws, axis=1) <= bound)
    assert np.all(np.abs(draws - y) < 1)
    np.testing.assert_allclose(draws.mean(0), y, atol=0.06)
    with pytest.raises(dp.DPError, match="conditional rounding"):
        dp.conditional_round(np.full(16, 0.5), bound=0.1, rng=rng)


def test_rounded_l2_bound_formula() -> None:
    c, d, beta = 10.0, 100, math.exp(-0.5)
    tight = math.sqrt(c * c + d / 4 + 1.0 * (c + 5.0))
    assert dp.rounded_l2_bound(l2=c, beta=beta, dim=d) == pytest.approx(tight)
    assert dp.rounded_l2_bound(l2=c, beta=0.0, dim=d) == pytest.approx(20.0)
    assert dp.rounded_l2_bound(l2=0.1, beta=1e-300, dim=1) == pytest.approx(1.1)


# --- accounting -------------------------------------------------------------------


def test_single_discrete_gaussian_rdp_is_exact_and_skellam_tends_to_gaussian() -> None:
    a = np.array(DEFAULT_ORDERS)
    one = dp.dgauss_sum_rdp(a, l2=3.0, l1=9.0, sigma=4.0, num_clients=1, dim=100)
    np.testing.assert_allclose(one, a * 9.0 / 32.0)
    # m clients of sigma: tau > 0 makes it no better than one Gaussian of sqrt(m) sigma.
    many = dp.dgauss_sum_rdp(a, l2=3.0, l1=9.0, sigma=0.6, num_clients=50, dim=100)
    assert np.all(many >= a * 9.0 / (2 * 50 * 0.36) - 1e-12)
    ints = np.arange(2, 64)
    sk = dp.skellam_rdp(ints, l2=30.0, l1=900.0, variance=1e8)
    np.testing.assert_allclose(sk, ints * 900.0 / 2e8, rtol=1e-4)
    frac = dp.skellam_rdp([2.5], l2=3.0, l1=9.0, variance=10.0)
    assert frac[0] == dp.skellam_rdp([3.0], l2=3.0, l1=9.0, variance=10.0)[0]


@pytest.mark.parametrize("mech", MECHS)
def test_epsilon_is_honest_about_dropouts_and_bits(mech: str) -> None:
    delta = 1e-5
    gauss_eps, _ = rdp_to_epsilon(DEFAULT_ORDERS, np.array(DEFAULT_ORDERS) / 2, delta)
    full = _cfg(mechanism=mech, min_clients=20, bits=20)
    eps_full, _ = dp.distributed_epsilon(full, delta=delta)
    # At 20 bits the mechanism is the Gaussian with z = 1 up to rounding (within 1%).
    assert gauss_eps <= eps_full <= gauss_eps * 1.01
    eps_drop, _ = dp.distributed_epsilon(_cfg(mechanism=mech, min_clients=10, bits=20), delta=delta)
    assert eps_drop > eps_full * 1.3  # half the noise variance
    eps_low, _ = dp.distributed_epsilon(_cfg(mechanism=mech, min_clients=20, bits=10), delta=delta)
    assert eps_low > eps_full  # coarse grid: inflated sensitivity
    eps3, _ = dp.distributed_epsilon(full, delta=delta, rounds=3)
    assert eps3 > eps_full
    rdp = dp.distributed_rdp(full, orders=(2.0, 8.0))
    assert rdp.shape == (2,) and rdp[1] > rdp[0]


# --- refusals ---------------------------------------------------------------------


def test_bits_too_small_is_refused_with_the_bits_that_would_do() -> None:
    with pytest.raises(dp.DPValueError, match=r"bits=8 is too small.*bits >= (\d+) would do") as info:
        _cfg(bits=8, expected_clients=1000, min_clients=900)
    need = int(info.value.args[0].rsplit("bits >= ", 1)[1].split()[0])
    cfg = _cfg(bits=need, expected_clients=1000, min_clients=900)
    assert cfg.local_std >= 0.5
    with pytest.raises(dp.DPValueError, match="bits"):
        _cfg(bits=need - 1, expected_clients=1000, min_clients=900)
    with pytest.raises(dp.DPValueError, match="bits=3 is too small"):
        _cfg(bits=3)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"dim": 0}, "dim"),
        ({"bits": 63}, "bits"),
        ({"clip": -1.0}, "clip"),
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": float("nan")}, "noise_multiplier"),
        ({"min_clients": 21}, "min_clients"),
        ({"expected_clients": 0}, "expected_clients"),
        ({"max_clients": 19}, "max_clients"),
        ({"mechanism": "gauss"}, "mechanism"),
        ({"beta": 1.0}, "beta"),
        ({"wrap_prob": 0.0}, "wrap_prob"),
        ({"norm_growth": "cubic"}, "norm_growth"),
    ],
)
def test_config_validation_names_the_field(kw, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dp.DPValueError, match=name):
        _cfg(**kw)


def test_bad_encode_and_decode_inputs() -> None:
    cfg = _cfg()
    rng = np.random.default_rng(0)
    with pytest.raises(dp.DPValueError, match="dim=250"):
        dp.encode_client(np.zeros(249), cfg, 1, rng)
    with pytest.raises(dp.DPValueError, match="x must be finite"):
        dp.encode_client(np.full(250, np.nan), cfg, 1, rng)
    with pytest.raises(TypeError, match="rng"):
        dp.encode_client(np.zeros(250), cfg, 1, None)  # type: ignore[arg-type]
    total = np.zeros(cfg.padded_dim, dtype=np.uint64)
    with pytest.raises(dp.DPValueError, match="num_survivors"):
        dp.decode_sum(total, cfg, 1, 14)  # below min_clients: less noise than accounted
    with pytest.raises(dp.DPValueError, match="num_survivors"):
        dp.decode_sum(total, cfg, 1, 21)
    with pytest.raises(dp.DPValueError, match="total_mod"):
        dp.decode_sum(total[:-1], cfg, 1, 15)
    with pytest.raises(dp.DPValueError, match="total_mod"):
        dp.decode_sum(total.astype(np.float64), cfg, 1, 15)


def test_wrap_bound_and_negative_totals() -> None:
    cfg = _cfg()
    assert dp.wrap_probability_bound(cfg) <= cfg.wrap_prob * (1 + 1e-9)
    assert dp.wrap_probability_bound(cfg, num_clients=5) < cfg.wrap_prob
    # A signed total holding -1 and the same total as unsigned words decode alike.
    signed = np.zeros(cfg.padded_dim, dtype=np.int64)
    signed[0] = -1
    unsigned = signed.astype(np.int64).view(np.uint64)
    a = dp.decode_sum(signed, cfg, 3, 15)
    b = dp.decode_sum(unsigned, cfg, 3, 15)
    np.testing.assert_array_equal(a, b)
    # -1 at one coordinate is a spike of -gamma, spread evenly: 250 of 256 entries kept.
    np.testing.assert_allclose(np.abs(a), cfg.gamma / 16)


def test_dgauss_fractional_orders_round_up() -> None:
    # dgauss with several clients evaluates fractional orders at the next integer.
    kw = {"l2": 3.0, "l1": 9.0, "sigma": 2.0, "num_clients": 5, "dim": 64}
    assert dp.dgauss_sum_rdp([2.2], **kw)[0] == dp.dgauss_sum_rdp([3.0], **kw)[0]


def test_skellam_refuses_bits_beyond_exact_poisson_sampling() -> None:
    with pytest.raises(dp.DPValueError, match="too large for skellam"):
        _cfg(mechanism="skellam", bits=60)
    assert _cfg(mechanism="dgauss", bits=60).local_std > 1e9


@pytest.mark.parametrize("mech", MECHS)
def test_aligned_clients_at_the_smallest_allowed_bits_do_not_wrap(mech: str) -> None:
    # The worst case for the modulus: every client sends the same vector of norm c,
    # concentrated on one coordinate (the rotation must spread it).
    with pytest.raises(dp.DPValueError, match=r"bits >= (\d+) would do") as info:
        _cfg(mechanism=mech, bits=4)
    bits = int(info.value.args[0].rsplit("bits >= ", 1)[1].split()[0])
    cfg = _cfg(mechanism=mech, bits=bits)
    x = np.zeros(250)
    x[17] = 1.0
    xs = np.tile(x, (20, 1))
    rng = np.random.default_rng(12)
    out = _run(cfg, xs, 77, rng)
    err = out - xs.sum(0)
    assert np.max(np.abs(err)) < 6 * math.hypot(
        dp.noise_std_target(cfg, num_clients=20), dp.rounding_std_bound(cfg, num_clients=20)
    )
    assert out[17] == pytest.approx(20.0, abs=6.0)


@settings(max_examples=40, deadline=None)
@given(
    mech=st.sampled_from(MECHS),
    expected=st.integers(2, 400),
    frac=st.floats(0.3, 1.0),
    extra=st.integers(0, 50),
    bits=st.integers(10, 24),
    z=st.floats(0.3, 3.0),
)
def test_every_allowed_survivor_count_is_covered_by_the_reported_rdp(  # type: ignore[no-untyped-def]
    mech, expected, frac, extra, bits, z
) -> None:
    lo = max(1, int(expected * frac))
    try:
        cfg = _cfg(mechanism=mech, expected_clients=expected, min_clients=lo,
                   max_clients=expected + extra, bits=bits, noise_multiplier=z)
    except dp.DPValueError as exc:
        assert "bits" in str(exc)
        return
    reported = dp.distributed_rdp(cfg)
    for m in {lo, (lo + cfg.client_bound) // 2, cfg.client_bound}:
        assert np.all(dp.distributed_rdp(cfg, num_survivors=m) <= reported * (1 + 1e-12))


def test_dgauss_worst_case_is_not_always_the_fewest_clients() -> None:
    # Small per-client sigma: the tau term grows with the number of clients.
    kw = {"l2": 5.0, "l1": 25.0, "sigma": 0.5, "dim": 64}
    few = dp.dgauss_sum_rdp([2.0], num_clients=10, **kw)[0]
    many = dp.dgauss_sum_rdp([2.0], num_clients=40, **kw)[0]
    assert many > few
    worst = dp.dgauss_sum_rdp_worst([2.0], min_clients=10, max_clients=40, **kw)[0]
    assert worst == pytest.approx(max(few, many, *(dp.dgauss_sum_rdp([2.0], num_clients=m, **kw)[0] for m in range(10, 41))))


def test_choose_gamma_formula_and_monotonicity() -> None:
    kw = {"dim": 250, "clip": 2.0, "noise_multiplier": 1.5, "expected_clients": 50}
    g = dp.choose_gamma(bits=16, **kw)
    d, n = 256, 50
    k2 = 2 * math.log(2 * d / 1e-6)
    s_in2 = (1.5 * 2.0) ** 2 / 50
    expect = math.sqrt(k2 * ((n * 2.0) ** 2 / d + n * s_in2) / (4.0**15 - k2 * n / 4))
    assert g == pytest.approx(expect, rel=1e-12)
    assert dp.choose_gamma(bits=17, **kw) == pytest.approx(g / 2, rel=1e-3)
    assert dp.choose_gamma(bits=16, norm_growth="sqrt", **kw) < g
    assert dp.choose_gamma(bits=16, wrap_prob=1e-3, **kw) < g
    assert dp.choose_gamma(bits=16, max_clients=80, **kw) > g
    cfg = _cfg(bits=16, clip=2.0, noise_multiplier=1.5, expected_clients=50, min_clients=40)
    assert cfg.gamma == g
    with pytest.raises(dp.DPValueError, match="max_clients"):
        dp.choose_gamma(bits=16, max_clients=49, **kw)
