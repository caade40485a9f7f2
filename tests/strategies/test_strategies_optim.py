"""Server optimisers against steps computed by hand (scalar model, x0 = 1, deltas 0.5, -0.2)."""

import numpy as np
import pytest

import secagg


def _two_steps(strategy):
    x = [np.array([1.0])]
    out = []
    for delta in (0.5, -0.2):
        agg = secagg.AggregateResult(weighted_sum=np.array([2 * delta]), total_weight=2.0, contributors=(0, 1))
        x = strategy.aggregate_fit(len(out) + 1, x, agg)
        out.append(float(x[0][0]))
    return out


@pytest.mark.parametrize(
    ("strategy", "expect"),
    [
        # v1 = 0.5, x1 = 1.5; v2 = 0.9*0.5 - 0.2 = 0.25, x2 = 1.75
        (secagg.FedAvgM(server_learning_rate=1.0, server_momentum=0.9), [1.5, 1.75]),
        # Nesterov: x1 = 1 + (0.9*0.5 + 0.5) = 1.95; v2 = 0.25, x2 = 1.95 + 0.9*0.25 - 0.2
        (secagg.FedAvgM(server_learning_rate=1.0, server_momentum=0.9, nesterov=True), [1.95, 1.975]),
        # m1 = 0.05, v1 = 0.0025 -> x1 = 1 + 0.1*0.05/0.05 = 1.1
        # m2 = 0.025, v2 = 0.002875 -> x2 = 1.1 + 0.1*0.025/0.0536190265 = 1.1466252
        (secagg.FedAdam(), [1.1, 1.1466252]),
        # v1 = 0 + 0.01*0.25 = 0.0025, x1 = 1 + 0.01*0.05/(0.05+0.001) = 1.0098039
        # v2 = 0.0025 + 0.01*0.04 = 0.0029, x2 = x1 + 0.01*0.025/(0.0538516+0.001) = 1.0143617
        (secagg.FedYogi(), [1.0098039, 1.0143617]),
        # beta_1 = 0: m = delta; v1 = 0.25, x1 = 1.1; v2 = 0.29, x2 = 1.1 - 0.02/0.5385165 = 1.0628609
        (secagg.FedAdagrad(), [1.1, 1.0628609]),
    ],
)
def test_optimiser_steps_match_hand_computation(strategy, expect):
    np.testing.assert_allclose(_two_steps(strategy), expect, rtol=1e-6)


def test_bias_correction_adam_first_step():
    # lr_1 = 0.1 * sqrt(1 - 0.99) / (1 - 0.9) = 0.1; step = lr_1 * 0.05/0.05 = 0.1 ... times 1
    s = secagg.FedAdam(bias_correction=True)
    assert _two_steps(s)[0] == pytest.approx(1.1, rel=1e-6)


def test_reset_forgets_state():
    s = secagg.FedAvgM(server_learning_rate=1.0, server_momentum=0.9)
    first = _two_steps(s)
    s.reset()
    assert _two_steps(s) == first


def test_optimisers_are_vectorised_per_coordinate():
    s = secagg.FedAdam()
    x = [np.ones((2, 2))]
    delta = np.array([0.5, -0.5, 1.0, 0.0])
    agg = secagg.AggregateResult(weighted_sum=delta, total_weight=1.0, contributors=(0,))
    new = s.aggregate_fit(1, x, agg)[0].ravel()
    m, v = 0.1 * delta, 0.01 * delta**2
    np.testing.assert_allclose(new, 1 + 0.1 * m / (np.sqrt(v) + 1e-9))


@pytest.mark.parametrize(("cls", "kw", "match"), [
    (secagg.FedAdam, {"beta_1": 1.0}, "beta_1 must be in"),
    (secagg.FedYogi, {"tau": 0.0}, "tau must be positive"),
    (secagg.FedAvgM, {"server_momentum": 1.0}, "server_momentum must be in"),
])
def test_invalid_optimiser_settings(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)
