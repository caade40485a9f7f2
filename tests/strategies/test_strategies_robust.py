import numpy as np
import pytest
from conftest import aggregate

import secagg


def _updates(rng, n=7, d=4):
    return {c: (rng.normal(size=d), float(c + 1)) for c in range(n)}


def test_median_and_trimmed_mean_on_collected_updates():
    rng = np.random.default_rng(5)
    ups = _updates(rng)
    ups[3] = (np.full(4, 1e6), 1.0)  # a poisoned update
    agg = aggregate(ups, backend=secagg.CollectingBackend())
    assert isinstance(agg, secagg.IndividualAggregate)
    stack = np.stack([ups[c][0] for c in sorted(ups)])
    new = secagg.FedMedian().aggregate_fit(1, [np.zeros(4)], agg)
    np.testing.assert_allclose(new[0], np.median(stack, axis=0))
    assert np.all(np.abs(new[0]) < 10)
    trimmed = secagg.FedTrimmedAvg(beta=0.2).aggregate_fit(1, [np.zeros(4)], agg)
    np.testing.assert_allclose(trimmed[0], np.sort(stack, axis=0)[1:6].mean(axis=0))


def test_median_refuses_a_plain_sum():
    agg = aggregate(_updates(np.random.default_rng(0)))
    with pytest.raises(secagg.ConfigurationError, match="needs each client's update"):
        secagg.FedMedian().aggregate_fit(1, [np.zeros(4)], agg)


def test_median_asks_for_collecting_backend_and_runs_in_the_loop(clients):
    s = secagg.FedMedian()
    assert isinstance(s.backend(server_round=1, num_clients=3), secagg.CollectingBackend)
    params, logs = secagg.run_federated(s, clients, [np.zeros(5)], rounds=3, rng=np.random.default_rng(0))
    assert np.all(np.isfinite(params[0])) and len(logs) == 3


@pytest.mark.parametrize("inner", [secagg.FedMedian(), secagg.FedTrimmedAvg(beta=0.1)])
def test_secure_aggregation_refuses_individual_update_strategies(inner):
    with pytest.raises(secagg.ConfigurationError, match="reveals only their sum"):
        secagg.SecureAggregation(inner)
    with pytest.raises(secagg.ConfigurationError, match=type(inner).__name__):
        secagg.SecureAggregation(secagg.StrategyWrapper(inner))
