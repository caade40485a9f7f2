"""Calibration never overshoots; round tables agree with the accountants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dp


@settings(max_examples=25, deadline=None)
@given(
    target=st.floats(min_value=0.2, max_value=12.0),
    q=st.floats(min_value=1e-4, max_value=1.0),
    steps=st.integers(min_value=1, max_value=5000),
    log_delta=st.integers(min_value=-10, max_value=-3),
)
def test_calibrated_noise_never_overshoots_and_is_minimal(
    target: float, q: float, steps: int, log_delta: int
) -> None:
    delta = 10.0**log_delta
    c = dp.calibrate_noise(target_epsilon=target, delta=delta, sample_rate=q, steps=steps)
    achieved = dp.account(noise_multiplier=c.noise_multiplier, sample_rate=q, steps=steps,
                          delta=delta).epsilon
    assert achieved <= target
    assert c.epsilon == pytest.approx(achieved)
    smaller = c.noise_multiplier * (1 - 2e-4)
    assert dp.account(noise_multiplier=smaller, sample_rate=q, steps=steps,
                      delta=delta).epsilon > target


def test_pld_calibration_never_overshoots() -> None:
    c = dp.calibrate_noise(target_epsilon=1.0, delta=1e-5, sample_rate=0.02, steps=200,
                           accountant="pld")
    assert c.epsilon <= 1.0
    again = dp.account(noise_multiplier=c.noise_multiplier, sample_rate=0.02, steps=200,
                       delta=1e-5, accountant="pld").epsilon
    assert again <= 1.0
    rdp = dp.calibrate_noise(target_epsilon=1.0, delta=1e-5, sample_rate=0.02, steps=200)
    assert c.noise_multiplier < rdp.noise_multiplier


def test_impossible_requests() -> None:
    with pytest.raises(dp.CalibrationError, match="target_epsilon"):
        dp.calibrate_noise(target_epsilon=0.0, delta=1e-5, sample_rate=0.1, steps=10)
    with pytest.raises(dp.CalibrationError, match="unreachable"):
        dp.calibrate_noise(target_epsilon=1e-9, delta=1e-12, sample_rate=1.0, steps=10**6)
    for q in (0.0, -0.1, 1.5):
        with pytest.raises(dp.DPValueError, match="sample_rate"):
            dp.calibrate_noise(target_epsilon=1.0, delta=1e-5, sample_rate=q, steps=10)
    with pytest.raises(dp.DPValueError, match="delta"):
        dp.calibrate_noise(target_epsilon=1.0, delta=0.0, sample_rate=0.1, steps=10)
    # fixed-size sampling without a population samples the fraction exactly (issue 3's CLI)
    assert dp.account(noise_multiplier=1.0, sample_rate=0.1, steps=10, delta=1e-5,
                      sampling="fixed") == dp.account(noise_multiplier=1.0, sample_rate=0.1,
                                                      steps=10, delta=1e-5, sampling="fixed",
                                                      population_size=100)
    with pytest.raises(dp.UnsupportedEventError):
        dp.account(noise_multiplier=1.0, sample_rate=0.1, steps=10, delta=1e-5,
                   sampling="fixed", population_size=100, accountant="pld")


def test_epsilon_over_10000_rounds_in_one_call_matches_accountant() -> None:
    event = dp.round_event(noise_multiplier=1.1, sample_rate=0.01)
    eps = dp.epsilon_over_rounds(event, np.arange(1, 10001), delta=1e-5)
    assert eps.shape == (10000,)
    assert np.all(np.diff(eps) >= -1e-12)
    for t in (1, 77, 10000):
        assert eps[t - 1] == pytest.approx(
            dp.RdpAccountant().compose(event, t).get_epsilon(1e-5), rel=1e-12)
    pld = dp.epsilon_over_rounds(event, [1, 100], delta=1e-5, accountant="pld")
    assert np.all(pld <= eps[[0, 99]])


def test_max_rounds_is_the_last_round_within_budget() -> None:
    kw = dict(noise_multiplier=1.0, sample_rate=0.01, delta=1e-5)
    t = dp.max_rounds(target_epsilon=2.0, **kw)
    event = dp.round_event(noise_multiplier=1.0, sample_rate=0.01)
    e = dp.epsilon_over_rounds(event, [t, t + 1], delta=1e-5)
    assert e[0] <= 2.0 < e[1]
    assert dp.max_rounds(target_epsilon=1e-3, **kw) == 0
    assert dp.max_rounds(target_epsilon=1e3, limit=500, **kw) == 500


def test_pld_calibration_does_not_stop_at_the_rdp_floor() -> None:
    """RDP cannot go below about 0.0147 at delta 1e-10 (its largest order is 1024), PLD can:
    the PLD calibration used to raise 'unreachable' quoting RDP's epsilon."""
    c = dp.calibrate_noise(target_epsilon=1e-3, delta=1e-10, sample_rate=1.0, steps=1,
                           accountant="pld")
    assert c.epsilon <= 1e-3 and c.noise_multiplier < 1e5
    slightly_less = dp.account(noise_multiplier=c.noise_multiplier * (1 - 1e-3), sample_rate=1.0,
                               steps=1, delta=1e-10, accountant="pld")
    assert slightly_less.epsilon > 1e-3


@pytest.mark.slow  # about 9 s: PLDs of 4M points near z = 0.05
def test_pld_calibration_steps_over_noise_too_small_for_one_pld() -> None:
    # the answer (z ~ 0.048) is fine for PLD, but the bisection tries z ~ 0.024 on the
    # way down, whose one-step loss exceeds 700 nats: PLD refuses it (DPValueError),
    # which must count as "over the target", not end the calibration
    cal = dp.calibrate_noise(target_epsilon=300.0, delta=1e-5, sample_rate=1.0, steps=1,
                             accountant="pld", rtol=0.25)
    assert cal.epsilon <= 300.0
    assert 0.04 < cal.noise_multiplier < 0.07
    # and the result is never below the exact Gaussian epsilon at that noise
    assert cal.epsilon >= dp.gaussian_epsilon(noise_multiplier=cal.noise_multiplier,
                                              delta=1e-5) * (1 - 1e-9)
    with pytest.raises(dp.DPValueError, match="sample_rate"):  # bad arguments still raise
        dp.calibrate_noise(target_epsilon=300.0, delta=1e-5, sample_rate=2.0, steps=1,
                           accountant="pld")
    with pytest.raises(dp.DPValueError, match="delta must be >= 1e-12"):  # not 'unreachable'
        dp.calibrate_noise(target_epsilon=1.0, delta=1e-13, sample_rate=0.1, steps=10,
                           accountant="pld")
