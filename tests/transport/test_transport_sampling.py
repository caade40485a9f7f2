"""Fit sampling follows the strategy's ``num_fit_clients``, capped by the coordinator's
``clients_per_round`` (over-selection on top), and
the DP wrappers account the sample the coordinator really drew: over-selected clients
count, and the population is the connected clients it sampled from."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import transport_testkit as kit

import dp
import secagg
import transport


def run(strategy: secagg.Strategy, clients: int, **config: object) -> transport.RunSummary:
    coord = transport.Coordinator(
        strategy=strategy, parameters=kit.initial_parameters(), backend=secagg.PlainBackend(),
        config=kit.config(**{"rounds": 2, "clients_per_round": clients, **config}))
    summary, _, _ = asyncio.run(kit.run_federation(
        kit.InProcHarness(), coord, {c: kit.runtime(c) for c in range(clients)}))
    return summary


def test_coordinator_samples_what_the_strategy_asks_plus_over_selection() -> None:
    fedavg = secagg.FedAvg(fraction_fit=0.5, fraction_evaluate=0.0)
    # waits for ceil(4 * 1.33) = 6 connected; aggregates 3 of them, asks ceil(3 * 1.33)
    summary = run(fedavg, 6, clients_per_round=4, over_selection=0.33)
    assert summary.rounds_completed == 2
    for record in summary.log:
        assert len(record.sampled) == 4
        assert len(record.selected) == 3 == len(record.contributors)
        assert set(record.released) | set(record.selected) <= set(record.sampled)
    assert len({rec.sampled for rec in summary.log}) == 2  # a fresh sample each round
    # FedAvg's default asks for all 4 connected: clients_per_round caps it at 2, plus 1 over
    capped = run(secagg.FedAvg(fraction_evaluate=0.0), 4, clients_per_round=2, over_selection=0.5)
    assert all(len(r.sampled) == 3 and len(r.selected) == 2 for r in capped.log)


def test_a_strategy_without_sampling_gets_clients_per_round() -> None:
    summary = run(kit.TinyAvg(), 4, clients_per_round=3, min_clients=2)  # type: ignore[arg-type]
    assert all(len(r.sampled) == 3 for r in summary.log)


def _wrapper(num_clients: int, budget: float | None = None) -> dp.ClientSideFixedClipping:
    return dp.ClientSideFixedClipping(
        secagg.FedAvg(fraction_fit=0.5, fraction_evaluate=0.0), noise_multiplier=1.0,
        clipping_norm=1.0, num_clients=num_clients, epsilon_budget=budget,
        rng=np.random.default_rng(0))


@pytest.mark.parametrize(("population", "connected", "sampled"), [
    (6, 6, 4),   # 3 of 6 planned, 4 asked with over-selection: the rate is 4/6, not 3/6
    (10, 6, 4),  # only 6 of the declared 10 connected: they are the population
])
def test_dp_accounting_uses_the_real_sample(population: int, connected: int,
                                            sampled: int) -> None:
    strategy = _wrapper(population)
    summary = run(strategy, connected, clients_per_round=4, over_selection=0.33)
    assert [len(r.sampled) for r in summary.log] == [sampled, sampled]
    event = dp.SampledWithoutReplacement(population_size=connected, sample_size=sampled,
                                         event=dp.Gaussian(noise_multiplier=0.5))
    assert strategy.state_dict()["events"] == [[dp.event_to_json(event), 2]]
    assert strategy.epsilon == pytest.approx(
        dp.RdpAccountant().compose(event, 2).get_epsilon(strategy.delta))
    assert strategy.epsilon > _wrapper(population).epsilon_after(2)  # the plan was 3 of N


def test_the_real_sample_is_checked_against_the_budget() -> None:
    probe = _wrapper(6)
    planned, asked = probe.epsilon_after(1), probe.round_event(4)  # 3 of 6 planned, 4 asked
    whole = dp.RdpAccountant().compose(asked).get_epsilon(probe.delta)
    assert whole > planned
    strategy = _wrapper(6, budget=(planned + whole) / 2)
    strategy.configure_fit(1, [np.zeros(2)])  # the plan fits the budget
    with pytest.raises(dp.BudgetExceededError):
        strategy.fit_sampled(1, num_available=6, num_sampled=4)  # the real sample does not
    with pytest.raises(dp.DPValueError, match="num_sampled"):
        strategy.fit_sampled(1, num_available=2, num_sampled=3)
    summary = run(_wrapper(6, budget=(planned + whole) / 2), 6, clients_per_round=3,
                  over_selection=0.33)
    assert summary.rounds_completed == 0 and "round 1" in summary.stopped


def test_run_federated_accounts_the_same_sample() -> None:
    strategy = _wrapper(10)
    clients = {c: _Fit() for c in range(6)}
    secagg.run_federated(strategy, clients, [np.zeros(3)], rounds=1, rng=np.random.default_rng(1))
    event = dp.SampledWithoutReplacement(population_size=6, sample_size=3,
                                         event=dp.Gaussian(noise_multiplier=0.5))
    assert strategy.state_dict()["events"] == [[dp.event_to_json(event), 1]]


class _Fit:
    def fit(self, parameters: secagg.Parameters, config: secagg.Config
            ) -> tuple[secagg.Parameters, int, dict]:
        return [p + 0.1 for p in parameters], 1, {}
