import numpy as np
import pytest
from conftest import aggregate

import secagg


def test_evaluation_vector_layout_and_weighted_means():
    s = secagg.FedAvg(metrics=("accuracy", "f1"))
    config = s.configure_evaluate(1, [np.zeros(2)])
    assert config == {"blindsum.metrics": "accuracy,f1"}
    assert secagg.evaluation_dim(config) == 3
    reports = {0: (2.0, 10, {"accuracy": 0.5, "f1": 0.4, "other": 9.0}), 1: (1.0, 30, {"accuracy": 0.9, "f1": 0.8})}
    inputs = {c: (secagg.evaluation_vector(loss, m, config), float(n)) for c, (loss, n, m) in reports.items()}
    np.testing.assert_array_equal(inputs[0][0], [2.0, 0.5, 0.4])
    res = s.aggregate_evaluate(1, [np.zeros(2)], aggregate(inputs))
    assert res.loss == pytest.approx((2.0 * 10 + 1.0 * 30) / 40)
    assert res.metrics["accuracy"] == pytest.approx((0.5 * 10 + 0.9 * 30) / 40)
    assert res.metrics["f1"] == pytest.approx((0.4 * 10 + 0.8 * 30) / 40)
    assert res.num_examples == 40 and res.num_clients == 2


def test_missing_metric_is_refused_with_its_name():
    with pytest.raises(ValueError, match="accuracy"):
        secagg.evaluation_vector(1.0, {}, {"blindsum.metrics": "accuracy"})
    with pytest.raises(ValueError, match="finite"):
        secagg.evaluation_vector(float("nan"), {}, {})


def test_aggregate_evaluate_checks_dimension():
    agg = secagg.AggregateResult(weighted_sum=np.ones(2), total_weight=1.0, contributors=(0,))
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        secagg.FedAvg().aggregate_evaluate(1, [], agg)


def test_server_side_evaluate_fn():
    s = secagg.FedAvg(evaluate_fn=lambda r, p: (float(np.sum(p[0])), {"round": float(r)}))
    res = s.evaluate(4, [np.ones(3)])
    assert res is not None and res.loss == 3.0 and res.metrics["round"] == 4.0
    assert secagg.FedAvg().evaluate(1, []) is None


def test_client_weight_follows_config():
    assert secagg.client_weight(12, {}) == 12.0
    assert secagg.client_weight(12, {"blindsum.weighting": "uniform"}) == 1.0
    with pytest.raises(ValueError, match="num_examples must be positive"):
        secagg.client_weight(0, {})
    with pytest.raises(ValueError, match="blindsum.weighting"):
        secagg.client_weight(1, {"blindsum.weighting": "bogus"})


def test_federated_loop_trains_and_evaluates(clients):
    s = secagg.FedAvg(metrics=("accuracy",), min_fit_clients=2, fraction_fit=0.5)
    params, logs = secagg.run_federated(s, clients, [np.zeros(5)], rounds=6, rng=np.random.default_rng(3))
    assert len(logs) == 6
    assert all(len(log.sampled) == 4 for log in logs)
    n = {c: k.num_examples for c, k in clients.items()}
    initial = sum(n[c] * float(np.sum(k.target**2)) for c, k in clients.items()) / sum(n.values())
    final = logs[-1].federated_evaluation
    assert final.loss < 0.8 * initial
    assert final.num_clients == 8 and set(final.metrics) == {"accuracy"}
    # the fixed point of FedAvg over all clients is the example-weighted mean of targets
    target = sum(c.num_examples * c.target for c in clients.values()) / sum(c.num_examples for c in clients.values())
    full = secagg.FedAvg()
    params, _ = secagg.run_federated(full, clients, [np.zeros(5)], rounds=40, rng=np.random.default_rng(0))
    np.testing.assert_allclose(params[0], target, atol=1e-6)


def test_federated_loop_dropouts_are_reported(clients):
    s = secagg.FedAvg()
    _, logs = secagg.run_federated(s, clients, [np.zeros(5)], rounds=5, rng=np.random.default_rng(1),
                                   dropout_rate=0.5, max_drop_after=0)
    assert sum(len(log.dropped) for log in logs) > 0
    for log in logs:
        assert set(log.dropped) | set(log.contributors) == set(log.sampled)


def test_in_process_clients_without_evaluate_are_left_out_of_federated_evaluation():
    # as the gRPC client runtime does; run_federated raised AttributeError after round 1
    class FitOnly:
        def __init__(self, target):
            self.target = target

        def fit(self, parameters, config):
            return [parameters[0] + 0.5 * (self.target - parameters[0])], 1, {}

    class Both(FitOnly):
        def evaluate(self, parameters, config):
            return 2.0, 1, {}

    only_fit = {i: FitOnly(np.full(2, float(i))) for i in range(3)}
    _, logs = secagg.run_federated(secagg.FedAvg(), only_fit, [np.zeros(2)], rounds=2,
                                   rng=np.random.default_rng(0))
    assert [log.federated_evaluation for log in logs] == [None, None]
    mixed = {**only_fit, 3: Both(np.ones(2)), 4: Both(np.ones(2))}
    _, logs = secagg.run_federated(secagg.FedAvg(), mixed, [np.zeros(2)], rounds=1,
                                   rng=np.random.default_rng(0))
    assert logs[0].federated_evaluation.loss == 2.0
    assert logs[0].federated_evaluation.num_clients == 2
