"""DistributedDP: the strategy wrapper whose clients add the noise under SecAgg+."""

import dataclasses

import numpy as np
import pytest

import dp
import secagg


class _Still:
    """A client whose update is zero: what reaches the model is the noise alone."""

    def fit(self, parameters, config):
        return [p.copy() for p in parameters], 1, {}

    def evaluate(self, parameters, config):
        return 0.0, 1, {}


class _Pull:
    def __init__(self, target):
        self.target = target

    def fit(self, parameters, config):
        return [parameters[0] + 0.5 * (self.target - parameters[0])], 1, {}

    def evaluate(self, parameters, config):
        return 0.0, 1, {}


def test_noise_in_the_model_has_the_configured_scale():
    n, d, z, c = 10, 3000, 1.0, 2.0
    strategy = secagg.SecureAggregation(
        dp.DistributedDP(secagg.FedAvg(), noise_multiplier=z, clipping_norm=c, clients_per_round=n),
        dropout_rate=0.0)
    params, logs = secagg.run_federated(strategy, {i: _Still() for i in range(n)}, [np.zeros(d)],
                                        rounds=1, rng=np.random.default_rng(4))
    assert logs[0].contributors == tuple(range(n))
    # FedAvg divides the noisy sum by the n survivors: noise std z * c / n per coordinate
    assert np.std(params[0]) == pytest.approx(z * c / n, rel=0.04)


def test_epsilon_per_round_composes_the_mechanism_rdp():
    n = 8
    inner = dp.DistributedDP(secagg.FedAvg(), noise_multiplier=2.0, clipping_norm=1.0,
                             clients_per_round=n, mechanism="skellam")
    strategy = secagg.SecureAggregation(inner, dropout_rate=0.0)
    clients = {i: _Pull(np.full(5, 0.1 * i)) for i in range(n)}
    params, logs = secagg.run_federated(strategy, clients, [np.zeros(5)], rounds=3,
                                        rng=np.random.default_rng(0))
    assert inner.rounds_accounted == 3
    _, cfg = dp.DistributedDPBackend(mechanism="skellam", noise_multiplier=2.0, clip=1.0,
                                     bits=20).round_parameters(num_clients=n, dim=5)
    want, _ = dp.distributed_epsilon(cfg, delta=1e-5, rounds=3)
    assert inner.epsilon == pytest.approx(want, rel=1e-9)


def test_runs_alone_on_the_complete_graph_and_survives_expected_dropouts():
    strategy = dp.DistributedDP(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                                clients_per_round=10, expected_dropout=0.3)
    backend = strategy.backend(server_round=1, num_clients=10)
    assert isinstance(backend, dp.DistributedDPBackend)
    _, logs = secagg.run_federated(strategy, {i: _Still() for i in range(10)}, [np.zeros(4)],
                                   rounds=2, rng=np.random.default_rng(2), dropout_rate=0.2,
                                   max_drop_after=2)
    assert all(log.failure is None or "shares" in log.failure for log in logs)


def test_budget_stops_training():
    strategy = dp.DistributedDP(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                                clients_per_round=6, epsilon_budget=12.0)
    _, logs = secagg.run_federated(strategy, {i: _Still() for i in range(6)}, [np.zeros(4)],
                                   rounds=30, rng=np.random.default_rng(1))
    assert 0 < len(logs) < 30 and strategy.epsilon <= 12.0


def test_refusals():
    with pytest.raises(ValueError, match="bits"):
        dp.DistributedDP(secagg.FedAvg(), noise_multiplier=0.5, clipping_norm=1.0,
                         clients_per_round=5000, bits=6)
    with pytest.raises(dp.DPValueError, match="individual updates"):
        dp.DistributedDP(secagg.FedMedian(), noise_multiplier=1.0, clipping_norm=1.0,
                         clients_per_round=10)
    with pytest.raises(dp.DPValueError, match="two DP"):
        dp.DistributedDP(dp.ClientSideFixedClipping(secagg.FedAvg(), noise_multiplier=1.0,
                                                    clipping_norm=1.0, num_clients=10),
                         noise_multiplier=1.0, clipping_norm=1.0, clients_per_round=10)


@pytest.mark.parametrize("settings", [{"threshold": 5}, {"num_neighbours": 4}])
def test_accounting_uses_the_threshold_of_the_outer_secure_aggregation(settings):
    # A threshold below the expected survivors lets the server release a sum of fewer
    # (less noisy) inputs: the wrapper must account for that many, as the backend does.
    n = 20
    inner = dp.DistributedDP(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                             clients_per_round=n)
    strategy = secagg.SecureAggregation(inner, dropout_rate=0.0, **settings)
    _, cfg = strategy.backend(server_round=1, num_clients=n).round_parameters(num_clients=n, dim=5)
    assert cfg.min_clients == 5
    want, _ = dp.distributed_epsilon(cfg, delta=1e-5)
    full, _ = dp.distributed_epsilon(dataclasses.replace(cfg, min_clients=n), delta=1e-5)
    assert want > 2 * full
    # the budget check before round 1 already knows the threshold
    with pytest.raises(dp.BudgetExceededError):
        secagg.SecureAggregation(
            dp.DistributedDP(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                             clients_per_round=n, epsilon_budget=(want + full) / 2),
            dropout_rate=0.0, **settings,
        ).configure_fit(1, [np.zeros(5)])
    secagg.run_federated(strategy, {i: _Still() for i in range(n)}, [np.zeros(5)], rounds=1,
                         rng=np.random.default_rng(3))
    assert inner.rounds_accounted == 1
    assert inner.epsilon == pytest.approx(want, rel=1e-9)
