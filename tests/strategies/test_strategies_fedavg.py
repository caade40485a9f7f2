import numpy as np
import pytest
from conftest import aggregate

import secagg


def test_fedavg_sets_weighted_mean_of_client_models():
    rng = np.random.default_rng(1)
    old = [rng.normal(size=(3, 2)), rng.normal(size=4)]
    models = {c: [rng.normal(size=(3, 2)), rng.normal(size=4)] for c in range(5)}
    weights = {c: float(c + 1) for c in models}
    flat_old = secagg.flatten(old)
    agg = aggregate({c: (secagg.flatten(m) - flat_old, weights[c]) for c, m in models.items()})
    new = secagg.FedAvg().aggregate_fit(1, old, agg)
    for i in range(2):
        expect = sum(weights[c] * models[c][i] for c in models) / sum(weights.values())
        np.testing.assert_allclose(new[i], expect, rtol=1e-12)
        assert new[i].shape == old[i].shape


def test_server_learning_rate_scales_the_step():
    old = [np.zeros(3)]
    agg = aggregate({0: (np.array([1.0, 2.0, 3.0]), 1.0), 1: (np.array([3.0, 2.0, 1.0]), 1.0)})
    new = secagg.FedAvg(server_learning_rate=0.5).aggregate_fit(1, old, agg)
    np.testing.assert_allclose(new[0], [1.0, 1.0, 1.0])


def test_no_contributor_keeps_parameters():
    old = [np.arange(3.0)]
    empty = secagg.AggregateResult(weighted_sum=np.zeros(3), total_weight=0.0, contributors=(), dropped=(1, 2))
    np.testing.assert_array_equal(secagg.FedAvg().aggregate_fit(1, old, empty)[0], old[0])


def test_aggregate_shape_mismatch_names_rule():
    agg = secagg.AggregateResult(weighted_sum=np.ones(2), total_weight=1.0, contributors=(0,))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        secagg.FedAvg().aggregate_fit(1, [np.zeros(3)], agg)


@pytest.mark.parametrize(
    ("available", "fraction", "min_fit", "expect"),
    [(100, 0.1, 2, 10), (10, 0.1, 2, 2), (1, 1.0, 2, 0), (5, 1.0, 2, 5), (3, 0.5, 4, 0)],
)
def test_sampling(available, fraction, min_fit, expect):
    s = secagg.FedAvg(fraction_fit=fraction, min_fit_clients=min_fit, min_available_clients=min(min_fit, 3))
    assert s.num_fit_clients(available) == expect


def test_fraction_evaluate_zero_skips_evaluation():
    s = secagg.FedAvg(fraction_evaluate=0.0)
    assert s.num_evaluate_clients(10) == 0
    assert s.configure_evaluate(1, [np.zeros(1)]) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraction_fit": 1.5}, "fraction_fit must be in"),
        ({"min_fit_clients": 0}, "min_fit_clients must be at least 1"),
        ({"server_learning_rate": 0.0}, "server_learning_rate must be positive"),
        ({"metrics": ("a,b",)}, "metrics must be"),
    ],
)
def test_invalid_settings_name_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        secagg.FedAvg(**kwargs)


def test_fit_config_merges_user_settings_and_refuses_reserved_keys():
    s = secagg.FedProx(proximal_mu=0.1, on_fit_config_fn=lambda r: {"lr": 0.01 * r})
    assert s.configure_fit(3, []) == {"lr": 0.03, "proximal_mu": 0.1}
    bad = secagg.FedAvg(on_fit_config_fn=lambda r: {"blindsum.transforms": "x"})
    with pytest.raises(ValueError, match="reserved"):
        bad.configure_fit(1, [])
    with pytest.raises(ValueError, match="proximal_mu must be non-negative"):
        secagg.FedProx(proximal_mu=-1.0)


def test_strategies_implement_every_protocol():
    for cls in (secagg.FedAvg, secagg.FedAvgM, secagg.FedAdam, secagg.FedYogi, secagg.FedAdagrad):
        s = cls()
        assert isinstance(s, secagg.Strategy)
        assert isinstance(s, secagg.SamplingStrategy)
        assert isinstance(s, secagg.EvaluatingStrategy)
        assert isinstance(s, secagg.BackendStrategy)
        assert s.needs_individual_updates is False
    assert secagg.FedMedian.needs_individual_updates is True
