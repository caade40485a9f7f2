"""One contract for every accountant, subclassed per implementation."""

from __future__ import annotations

import math

import pytest

import dp

SAMPLED = dp.PoissonSampled(rate=0.02, event=dp.Gaussian(noise_multiplier=1.1))
UNSUPPORTED_BY_ALL = dp.PoissonSampled(
    rate=0.1, event=dp.PoissonSampled(rate=0.5, event=dp.Gaussian(noise_multiplier=1.0)))


class AccountantContract:
    """Behaviour every :class:`dp.PrivacyAccountant` must have."""

    def make(self) -> dp.PrivacyAccountant:
        raise NotImplementedError

    def test_fresh_accountant_spends_nothing(self) -> None:
        acc = self.make()
        assert acc.ledger == ()
        assert acc.get_epsilon(1e-5) == 0.0
        assert acc.get_delta(0.5) == pytest.approx(0.0, abs=1e-15)

    def test_compose_returns_self_and_records_ledger(self) -> None:
        acc = self.make()
        assert acc.compose(SAMPLED, 3) is acc
        acc.compose(dp.Gaussian(noise_multiplier=5.0))
        assert acc.ledger == ((SAMPLED, 3), (dp.Gaussian(noise_multiplier=5.0), 1))

    def test_unsupported_event_is_all_or_nothing(self) -> None:
        acc = self.make().compose(SAMPLED, 10)
        before = acc.get_epsilon(1e-5)
        bad = dp.Composed(events=(SAMPLED, UNSUPPORTED_BY_ALL))
        assert not acc.supports(bad)
        with pytest.raises(dp.UnsupportedEventError) as info:
            acc.compose(bad)
        assert isinstance(info.value, dp.DPError)
        assert acc.ledger == ((SAMPLED, 10),)
        assert acc.get_epsilon(1e-5) == before

    def test_supports_is_a_dry_run(self) -> None:
        acc = self.make()
        assert acc.supports(SAMPLED)
        assert acc.ledger == ()
        assert acc.get_epsilon(1e-5) == 0.0

    def test_count_equals_self_composed_equals_repeats(self) -> None:
        a = self.make().compose(SAMPLED, 4).get_epsilon(1e-5)
        b = self.make().compose(dp.SelfComposed(event=SAMPLED, count=4)).get_epsilon(1e-5)
        c = self.make().compose(dp.Composed(events=(SAMPLED,) * 4)).get_epsilon(1e-5)
        r = self.make()
        for _ in range(4):
            r.compose(SAMPLED)
        assert a == pytest.approx(b, rel=1e-9)
        assert a == pytest.approx(c, rel=1e-9)
        assert a == pytest.approx(r.get_epsilon(1e-5), rel=1e-9)

    def test_epsilon_grows_with_rounds_and_shrinks_with_delta(self) -> None:
        eps = [self.make().compose(SAMPLED, t).get_epsilon(1e-5) for t in (1, 10, 100)]
        assert eps[0] < eps[1] < eps[2]
        acc = self.make().compose(SAMPLED, 100)
        assert acc.get_epsilon(1e-3) < acc.get_epsilon(1e-5) < acc.get_epsilon(1e-8)

    def test_delta_and_epsilon_are_consistent(self) -> None:
        acc = self.make().compose(SAMPLED, 200)
        eps = acc.get_epsilon(1e-5)
        assert acc.get_delta(eps) <= 1e-5 * (1 + 1e-6)
        assert acc.get_delta(eps * 0.9) > 1e-5

    def test_bad_arguments_name_the_argument(self) -> None:
        acc = self.make()
        with pytest.raises(dp.DPValueError, match="count"):
            acc.compose(SAMPLED, 0)
        with pytest.raises(dp.DPValueError, match="event"):
            acc.compose("gaussian", 1)  # type: ignore[arg-type]
        with pytest.raises(dp.DPValueError, match="delta"):
            acc.get_epsilon(1.5)
        with pytest.raises(dp.DPValueError, match="epsilon"):
            acc.get_delta(-1.0)

    def test_compose_within_budget_is_all_or_nothing(self) -> None:
        acc = self.make().compose_within(SAMPLED, 10, epsilon=5.0, delta=1e-5)
        before = acc.get_epsilon(1e-5)
        with pytest.raises(dp.BudgetExceededError) as info:
            acc.compose_within(SAMPLED, 2000, epsilon=before + 0.01, delta=1e-5)
        assert info.value.spent_epsilon > before + 0.01
        assert acc.ledger == ((SAMPLED, 10),)
        assert acc.get_epsilon(1e-5) == before

    def test_pure_gaussian_not_below_closed_form(self) -> None:
        for sigma, t in [(1.0, 1), (4.530877117, 1), (2.0, 9)]:
            acc = self.make().compose(dp.Gaussian(noise_multiplier=sigma), t)
            exact = dp.gaussian_epsilon(noise_multiplier=sigma / math.sqrt(t), delta=1e-6)
            assert acc.get_epsilon(1e-6) >= exact


class TestRdpAccountant(AccountantContract):
    def make(self) -> dp.PrivacyAccountant:
        return dp.RdpAccountant()

    def test_supports_every_event_kind(self) -> None:
        acc = self.make()
        for base in (dp.Gaussian(noise_multiplier=1.0), dp.Laplace(noise_multiplier=1.0),
                     dp.DiscreteGaussian(sigma=3.0, sensitivity=1.0),
                     dp.Skellam(mu=100.0, l1_sensitivity=3.0, l2_sensitivity=2.0)):
            assert acc.supports(base)
            assert acc.supports(dp.PoissonSampled(rate=0.1, event=base))
            assert acc.supports(dp.SampledWithoutReplacement(
                population_size=100, sample_size=10, event=base))

    def test_reports_the_order(self) -> None:
        eps, order = dp.RdpAccountant().compose(SAMPLED, 100).get_epsilon_and_order(1e-5)
        assert order in dp.DEFAULT_ORDERS and eps > 0


class TestPldAccountant(AccountantContract):
    def make(self) -> dp.PrivacyAccountant:
        return dp.PldAccountant()

    def test_rejects_what_it_cannot_account(self) -> None:
        acc = self.make()
        assert acc.supports(dp.PoissonSampled(rate=0.1, event=dp.Laplace(noise_multiplier=1.0)))
        assert not acc.supports(dp.DiscreteGaussian(sigma=2.0, sensitivity=1.0))
        assert not acc.supports(dp.SampledWithoutReplacement(
            population_size=100, sample_size=10, event=dp.Gaussian(noise_multiplier=1.0)))

    def test_bad_discretisation(self) -> None:
        with pytest.raises(dp.DPValueError, match="value_discretization_interval"):
            dp.PldAccountant(value_discretization_interval=0.0)
