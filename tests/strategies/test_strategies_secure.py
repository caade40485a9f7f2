"""SecureAggregation: same result as plain aggregation within the quantisation bound."""

import warnings

import numpy as np
import pytest
from conftest import aggregate

import dp
import secagg


def _secure(inner=None, **kw):
    kw.setdefault("num_neighbours", 7)
    kw.setdefault("threshold", 4)
    return secagg.SecureAggregation(inner or secagg.FedAvg(), **kw)


def test_secure_fedavg_equals_plain_fedavg_within_quantisation_bound():
    rng = np.random.default_rng(11)
    n, d = 8, 300
    old = [rng.normal(size=(10, 30))]
    updates = {c: (rng.uniform(-2, 2, size=d), float(rng.integers(1, 100))) for c in range(n)}
    wrapper = _secure(clipping_range=4.0, max_weight=100)
    backend = wrapper.backend(server_round=1, num_clients=n)
    assert isinstance(backend, secagg.SecAggPlusBackend)
    drops = {2: 2, 5: 1}  # two clients vanish before sending their masked input
    secure = secagg.aggregate_inprocess(backend, updates, round_id=1, dim=d, rng=rng, drop_after=drops)
    assert secure.dropped == (2, 5)
    plain = aggregate({c: updates[c] for c in secure.contributors})
    step = backend.round_config(round_id=1, num_clients=n, dim=d).scale ** -1
    new_secure = wrapper.aggregate_fit(1, old, secure)[0]
    new_plain = secagg.FedAvg().aggregate_fit(1, old, plain)[0]
    assert secure.total_weight == plain.total_weight
    assert np.max(np.abs(new_secure - new_plain)) <= step
    assert np.max(np.abs(new_secure - new_plain)) > 0  # it really was quantised


def test_secure_training_and_evaluation_end_to_end(clients):
    s = _secure(secagg.FedAvg(metrics=("accuracy", "examples")))
    params, logs = secagg.run_federated(s, clients, [np.zeros(5)], rounds=3, rng=np.random.default_rng(2),
                                        dropout_rate=0.2, max_drop_after=0)
    plain_params, plain_logs = secagg.run_federated(
        secagg.FedAvg(metrics=("accuracy", "examples")), clients, [np.zeros(5)], rounds=3,
        rng=np.random.default_rng(2), dropout_rate=0.2, max_drop_after=0)
    assert any(log.dropped for log in logs)
    assert [log.contributors for log in logs] == [log.contributors for log in plain_logs]
    np.testing.assert_allclose(params[0], plain_params[0], atol=1e-4)
    for log, ref in zip(logs, plain_logs, strict=True):
        ev, pev = log.federated_evaluation, ref.federated_evaluation
        assert ev.loss == pytest.approx(pev.loss, abs=1e-3)  # params differ by quantisation
        assert ev.metrics["examples"] == pytest.approx(pev.metrics["examples"], abs=1e-6)


def test_dp_inside_secure_aggregation_quantises_for_unit_weights():
    inner = dp.ClientSideFixedClipping(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                                       num_clients=8, rng=np.random.default_rng(0))
    s = _secure(inner)
    assert s.backend(server_round=1, num_clients=8).max_weight == 1
    assert _secure().backend(server_round=1, num_clients=8).max_weight == 1024
    evaluation = s.backend(server_round=1, num_clients=8, purpose="evaluate")
    assert evaluation.modulus_bits == 64 and evaluation.max_weight == 1024


def test_explicit_parameters_are_validated():
    with pytest.raises(secagg.ConfigurationError, match="dropout_rate must be in"):
        _secure(dropout_rate=1.0)
    with pytest.raises(secagg.ConfigurationError, match="modulus_bits must be"):
        _secure(modulus_bits=40)
    with pytest.raises(secagg.ConfigurationError, match="threshold .* exceeds"):
        _secure(num_neighbours=2, threshold=4).backend(server_round=1, num_clients=8).round_config(
            round_id=1, num_clients=8, dim=3)
    with pytest.raises(TypeError, match="must implement secagg.Strategy"):
        secagg.SecureAggregation(object())


def test_wrapper_stacked_backend_choices_are_refused():
    class Chooser(secagg.StrategyWrapper):
        def backend(self, *, server_round, num_clients, purpose="fit"):
            return secagg.PlainBackend()

    s = secagg.SecureAggregation(Chooser(secagg.FedAvg()), num_neighbours=2, threshold=2)
    with pytest.raises(secagg.ConfigurationError, match="do not stack two backend choices"):
        s.backend(server_round=1, num_clients=4)


def test_finder_chooses_k_and_t_when_not_given():
    s = secagg.SecureAggregation(secagg.FedAvg(), dropout_rate=0.1, corruption_rate=0.05)
    backend = s.backend(server_round=1, num_clients=200)
    k, t = backend.graph_parameters(200)
    found = secagg.find_parameters(clients=200, dropout=0.1, corrupt=0.05)
    assert (k, t) == (found.neighbours, found.threshold)
    assert k < 199  # a sparse graph: the point of SecAgg+


def test_adaptive_client_clipping_runs_under_secure_aggregation(clients):
    inner = dp.ClientSideAdaptiveClipping(secagg.FedAvg(), noise_multiplier=0.8, clipping_norm=0.5,
                                          num_clients=8, count_noise_std=1.0, rng=np.random.default_rng(0))
    s = _secure(inner, clipping_range=2.0)
    params, logs = secagg.run_federated(s, clients, [np.zeros(5)], rounds=3, rng=np.random.default_rng(4))
    assert inner.rounds_accounted == 3 and all(not log.failure for log in logs)
    assert inner.current_clipping_norm > 0.5  # updates (norm ~ 3) exceed the clip: it grows
    assert np.all(np.isfinite(params[0]))


def test_in_process_loop_warns_about_clients_heavier_than_max_weight():
    # SecAgg+ refuses a weight above max_weight and the client counts as dropped: the mean
    # then silently differed from plain FedAvg's
    class Client:
        def __init__(self, n):
            self.n = n

        def fit(self, parameters, config):
            return [parameters[0] + 1.0], self.n, {}

    clients = {0: Client(3000), 1: Client(10), 2: Client(10), 3: Client(10)}
    with pytest.warns(UserWarning, match=r"clients \[0\] weigh more than the backend's max_weight 1024"):
        _, logs = secagg.run_federated(secagg.SecureAggregation(secagg.FedAvg(fraction_evaluate=0.0)),
                                       clients, [np.zeros(3)], rounds=1, rng=np.random.default_rng(0))
    assert logs[0].dropped == (0,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        secagg.run_federated(secagg.SecureAggregation(secagg.FedAvg(fraction_evaluate=0.0),
                                                      max_weight=4096, modulus_bits=64),
                             clients, [np.zeros(3)], rounds=1, rng=np.random.default_rng(0))
