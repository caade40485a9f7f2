"""Published RDP and epsilon values (tests/vectors/dp/), each with its source."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_vectors import cases

import dp
from dp._rdp import rdp_to_epsilon


@pytest.mark.parametrize("case", cases("rdp_poisson_gaussian.json"))
def test_rdp_poisson_gaussian(case: dict) -> None:
    event = dp.round_event(noise_multiplier=case["noise_multiplier"],
                           sample_rate=case["sampling_rate"])
    got = case["steps"] * dp.rdp_of(event, np.array(case["orders"], dtype=float))
    want = np.array(case["rdp"], dtype=float)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=case["rtol"])
    if "dp_accounting_0_6" in case:  # never looser than dp_accounting
        assert np.all(got <= np.array(case["dp_accounting_0_6"], dtype=float))


@pytest.mark.parametrize("case", cases("epsilon_known_values.json", "conversion"))
def test_conversion(case: dict) -> None:
    if "rdp_constant" in case:
        orders = np.arange(2.0, 33.0)
        rdp = np.full(orders.size, case["rdp_constant"])
    else:
        orders = 0.001 * np.arange(1000, 100000)
        orders = orders[orders > 1]
        rdp = dp.rdp_of(dp.Gaussian(noise_multiplier=case["gaussian_sigma"]), orders)
        delta, _ = dp.rdp_to_delta(orders, rdp, case["epsilon"])
        assert float(delta) == pytest.approx(case["delta"], rel=1e-3)
    eps, _ = rdp_to_epsilon(orders, rdp, case["delta"])
    assert float(eps) == pytest.approx(case["epsilon"], abs=case["atol"])


@pytest.mark.parametrize("case", cases("epsilon_known_values.json", "dpsgd"))
def test_dpsgd_published_epsilons(case: dict) -> None:
    kw = dict(noise_multiplier=case["noise_multiplier"], sample_rate=case["sample_rate"],
              steps=case["steps"], delta=case["delta"])
    if case["accountant"] == "rdp-classic":
        acc = dp.RdpAccountant()
        acc.compose(dp.round_event(noise_multiplier=kw["noise_multiplier"],
                                   sample_rate=kw["sample_rate"]), kw["steps"])
        eps = float(rdp_to_epsilon(acc.orders, acc.rdp, kw["delta"], method="classic")[0])
    else:
        eps = dp.account(accountant=case["accountant"], **kw).epsilon
    assert eps == pytest.approx(case["epsilon"], abs=case["atol"])


def test_classic_conversion_is_never_tighter_than_balle() -> None:
    orders = np.array(dp.DEFAULT_ORDERS)
    rdp = dp.rdp_of(dp.round_event(noise_multiplier=1.0, sample_rate=0.01), orders) * 1000
    balle = float(rdp_to_epsilon(orders, rdp, 1e-5)[0])
    classic = float(rdp_to_epsilon(orders, rdp, 1e-5, method="classic")[0])
    assert balle < classic


def test_default_orders_cover_both_libraries() -> None:
    dpa = {1 + x / 10.0 for x in range(1, 100)} | set(range(11, 64)) | {128, 256, 512, 1024}
    opacus = {1 + x / 10.0 for x in range(1, 100)} | set(range(12, 64))
    assert (dpa | opacus) <= set(dp.DEFAULT_ORDERS)


def test_conversion_rejects_bad_arguments() -> None:
    orders = np.array([2.0, 3.0])
    with pytest.raises(dp.DPValueError, match="delta"):
        rdp_to_epsilon(orders, np.ones(2), 0.0)
    with pytest.raises(dp.DPValueError, match="rdp"):
        rdp_to_epsilon(orders, -np.ones(2), 1e-5)
    with pytest.raises(dp.DPValueError, match="orders"):
        rdp_to_epsilon(np.array([0.5, 2.0]), np.ones(2), 1e-5)
    with pytest.raises(dp.DPValueError, match="method"):
        rdp_to_epsilon(orders, np.ones(2), 1e-5, method="nope")
    assert math.isinf(float(rdp_to_epsilon(orders, np.full(2, np.inf), 1e-5)[0]))
