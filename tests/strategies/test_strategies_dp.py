"""DP wrappers: noise scale, clipping, accounting, budget and refused combinations."""

import numpy as np
import pytest
from conftest import aggregate

import dp
import secagg
from dp import BudgetExceededError, DPValueError, Gaussian, RdpAccountant, SampledWithoutReplacement


def _wrapper(cls=dp.ClientSideFixedClipping, inner=None, **kw):
    args = {"noise_multiplier": 1.5, "clipping_norm": 2.0, "num_clients": 10, "rng": np.random.default_rng(7)}
    args.update(kw)
    return cls(inner or secagg.FedAvg(), **args)


def _sum_round(wrapper, d=40_000, n=5, scale=0.001):
    config = wrapper.configure_fit(1, [np.zeros(d)])
    rng = np.random.default_rng(1)
    inputs = {}
    for c in range(n):
        u = secagg.apply_update_transforms(rng.normal(size=d) * scale, config, rng)
        inputs[c] = (u, secagg.client_weight(10 + c, config))
    agg = aggregate(inputs)
    new = wrapper.aggregate_fit(1, [np.zeros(d)], agg)[0]
    plain = agg.weighted_sum[:d] / agg.total_weight
    return new, plain, agg


def test_client_side_noise_scale_matches_multiplier():
    w = _wrapper()
    new, plain, agg = _sum_round(w)
    noise_on_sum = (new - plain) * agg.total_weight
    # 40,000 draws: the sample std is within 2% of the target with overwhelming probability
    assert np.std(noise_on_sum) == pytest.approx(1.5 * 2.0, rel=0.02)
    assert abs(np.mean(noise_on_sum)) < 0.05


def test_adaptive_noise_scale_accounts_for_the_count():
    w = _wrapper(dp.ClientSideAdaptiveClipping, count_noise_std=2.0)
    expect = (1.5**-2 - (2 * 2.0) ** -2) ** -0.5
    assert w.update_noise_multiplier == pytest.approx(expect)
    clip = w.current_clipping_norm
    new, plain, agg = _sum_round(w)
    assert agg.weighted_sum.shape == (40_001,)  # the clipped-or-not bit rides along
    assert agg.weighted_sum[-1] == 5.0  # all 5 tiny updates were under the clip
    assert np.std((new - plain) * agg.total_weight) == pytest.approx(expect * clip, rel=0.02)
    assert w.current_clipping_norm < clip  # everyone under the clip: it shrinks


def test_adaptive_clip_grows_when_updates_are_clipped():
    w = _wrapper(dp.ClientSideAdaptiveClipping, clipping_norm=0.01, count_noise_std=1.0, noise_multiplier=0.5)
    start = w.current_clipping_norm
    _sum_round(w, d=100, scale=1.0)
    assert w.current_clipping_norm == pytest.approx(start * np.exp(0.2 * 0.5), rel=0.3)
    assert w.current_clipping_norm > start


def test_client_side_config_clips_and_weighs_uniformly():
    w = _wrapper(inner=secagg.FedProx(proximal_mu=0.1))
    config = w.configure_fit(1, [np.zeros(3)])
    assert config["blindsum.weighting"] == "uniform" and config["proximal_mu"] == 0.1
    clipped = secagg.apply_update_transforms(np.array([30.0, 40.0, 0.0]), config, np.random.default_rng())
    np.testing.assert_allclose(clipped, [1.2, 1.6, 0.0])
    small = secagg.apply_update_transforms(np.array([0.3, 0.4, 0.0]), config, np.random.default_rng())
    np.testing.assert_allclose(small, [0.3, 0.4, 0.0])


def test_weighted_sum_from_a_runtime_that_ignores_uniform_weighting_is_refused():
    agg = aggregate({0: (np.ones(3), 5.0), 1: (np.ones(3), 1.0)})
    with pytest.raises(DPValueError, match="uniform"):
        _wrapper().aggregate_fit(1, [np.zeros(3)], agg)


def test_epsilon_matches_the_accountant_full_and_partial_participation():
    clients = {c: _Client(c) for c in range(10)}
    w = _wrapper(evaluation="off")
    secagg.run_federated(w, clients, [np.zeros(3)], rounds=4, rng=np.random.default_rng(0))
    assert w.rounds_accounted == 4 and w.evaluations_accounted == 0
    ref = RdpAccountant().compose(Gaussian(noise_multiplier=1.5), 4).get_epsilon(1e-5)
    assert w.epsilon == pytest.approx(ref)
    part = _wrapper(inner=secagg.FedAvg(fraction_fit=0.3, fraction_evaluate=0.0))
    secagg.run_federated(part, clients, [np.zeros(3)], rounds=2, rng=np.random.default_rng(0))
    event = SampledWithoutReplacement(population_size=10, sample_size=3, event=Gaussian(noise_multiplier=0.75))
    assert part.epsilon == pytest.approx(RdpAccountant().compose(event, 2).get_epsilon(1e-5))


def test_budget_stops_training_before_it_is_exceeded():
    clients = {c: _Client(c) for c in range(10)}
    probe = _wrapper()
    budget = (probe.epsilon_after(3) + probe.epsilon_after(4)) / 2
    w = _wrapper(epsilon_budget=budget)
    params, logs = secagg.run_federated(w, clients, [np.zeros(3)], rounds=10, rng=np.random.default_rng(0))
    assert len(logs) == 3 and w.rounds_accounted == 3  # stopped there, model kept
    assert params[0].shape == (3,)
    with pytest.raises(BudgetExceededError) as info:  # the next round is refused
        w.configure_fit(4, params)
    assert w.epsilon <= budget < info.value.spent_epsilon


def test_local_dp_noise_on_each_client_and_per_client_epsilon():
    w = _wrapper(dp.LocalDifferentialPrivacy, evaluation="off")
    config = w.configure_fit(1, [np.zeros(50_000)])
    out = secagg.apply_update_transforms(np.zeros(50_000), config, np.random.default_rng(3))
    assert np.std(out) == pytest.approx(1.5 * 2.0, rel=0.02)
    clients = {c: _Client(c) for c in range(10)}
    secagg.run_federated(w, clients, [np.zeros(3)], rounds=3, rng=np.random.default_rng(0))
    ref = RdpAccountant().compose(Gaussian(noise_multiplier=0.75), 3).get_epsilon(1e-5)
    assert w.epsilon == pytest.approx(ref)


def test_central_clipping_bounds_a_huge_update():
    w = _wrapper(dp.CentralFixedClipping, noise_multiplier=1e-6)
    assert isinstance(w.backend(server_round=1, num_clients=3), secagg.CollectingBackend)
    config = w.configure_fit(1, [np.zeros(2)])
    ups = {0: (np.array([1e6, 0.0]), secagg.client_weight(1, config)), 1: (np.array([0.0, 1.0]), 1.0)}
    new = w.aggregate_fit(1, [np.zeros(2)], aggregate(ups, backend=secagg.CollectingBackend()))
    np.testing.assert_allclose(new[0], [1.0, 0.5], atol=1e-4)  # (2, 0) + (0, 1), over 2
    with pytest.raises(DPValueError, match="each client's update"):
        w.aggregate_fit(1, [np.zeros(2)], aggregate(ups))


def test_central_adaptive_runs_and_moves_the_clip():
    clients = {c: _Client(c) for c in range(10)}
    w = _wrapper(dp.CentralAdaptiveClipping, clipping_norm=100.0, count_noise_std=1.0, noise_multiplier=0.5)
    secagg.run_federated(w, clients, [np.zeros(3)], rounds=3, rng=np.random.default_rng(0))
    assert w.current_clipping_norm < 100.0 and w.rounds_accounted == 3


def test_refused_combinations_explain_why():
    central = _wrapper(dp.CentralFixedClipping)
    with pytest.raises(secagg.ConfigurationError, match="server-side clipping needs each client's update"):
        secagg.SecureAggregation(central)
    with pytest.raises(DPValueError, match="cannot wrap SecureAggregation"):
        _wrapper(dp.CentralFixedClipping, inner=secagg.SecureAggregation(secagg.FedAvg()))
    with pytest.raises(DPValueError, match="needs individual updates"):
        _wrapper(inner=secagg.FedMedian())
    with pytest.raises(DPValueError, match="two DP wrappers"):
        _wrapper(dp.LocalDifferentialPrivacy, inner=_wrapper())
    with pytest.raises(DPValueError, match="count_noise_std must be"):
        _wrapper(dp.ClientSideAdaptiveClipping, count_noise_std=0.5)
    with pytest.raises(DPValueError, match="noise_multiplier must be"):
        _wrapper(noise_multiplier=0.0)


def test_client_side_dp_composes_with_secure_aggregation_both_ways():
    inner = secagg.SecureAggregation(_wrapper())
    outer = _wrapper(inner=secagg.SecureAggregation(secagg.FedAvg()))
    for s in (inner, outer):
        assert s.configure_fit(1, [np.zeros(2)])["blindsum.transforms"] == "blindsum.clip"


class _Client:
    def __init__(self, cid):
        self.target = np.full(3, float(cid))

    def fit(self, parameters, config):
        return [parameters[0] + 0.5 * (self.target - parameters[0])], 5, {}

    def evaluate(self, parameters, config):
        return float(np.sum((parameters[0] - self.target) ** 2)), 5, {}


def test_pld_accountant_is_tighter_and_matches_dp():
    rdp = _wrapper(accountant="rdp", evaluation="off")
    pld = _wrapper(accountant="pld", evaluation="off")
    ref = dp.PldAccountant().compose(Gaussian(noise_multiplier=1.5), 5).get_epsilon(1e-5)
    assert pld.epsilon_after(5) == pytest.approx(ref, rel=1e-9)
    assert pld.epsilon_after(5) < rdp.epsilon_after(5)
    with pytest.raises(DPValueError, match="accountant"):
        _wrapper(accountant="moments")



# -- federated evaluation under DP ------------------------------------------------------------


def test_federated_evaluation_is_noised_and_accounted_by_default():
    clients = {c: _Client(c) for c in range(10)}
    w = _wrapper()
    assert w.epsilon_after(4) == pytest.approx(
        RdpAccountant().compose(Gaussian(noise_multiplier=1.5), 8).get_epsilon(1e-5))
    _, logs = secagg.run_federated(w, clients, [np.zeros(3)], rounds=4, rng=np.random.default_rng(0))
    assert w.rounds_accounted == 4 and w.evaluations_accounted == 4
    assert w.epsilon == pytest.approx(w.epsilon_after(0)) and w.epsilon == pytest.approx(
        RdpAccountant().compose(Gaussian(noise_multiplier=1.5), 8).get_epsilon(1e-5))
    assert all(log.federated_evaluation is not None for log in logs)
    cheaper = _wrapper(evaluation_noise_multiplier=15.0)
    assert w.epsilon_after(4) > cheaper.epsilon_after(4) > _wrapper(evaluation="off").epsilon_after(4)


def test_evaluation_config_clamps_and_weighs_uniformly():
    w = _wrapper(inner=secagg.FedAvg(metrics=("acc", "r2")), evaluation_loss_bound=3.0)
    config = w.configure_evaluate(1, [np.zeros(3)])
    assert config["blindsum.weighting"] == "uniform"
    assert secagg.client_weight(250, config) == 1.0
    vector = secagg.evaluation_vector(1e6, {"acc": 0.25, "r2": -7.0}, config)
    out = secagg.apply_update_transforms(vector, config, np.random.default_rng(0))
    np.testing.assert_allclose(out, [3.0, 0.25, -1.0])
    assert w.evaluation_sensitivity(3) == pytest.approx(np.sqrt(9 + 2))


def _evaluation_noise(wrapper, config, vectors, trials):
    agg = aggregate({c: (v, secagg.client_weight(1, config)) for c, v in enumerate(vectors)})
    return np.array([wrapper.aggregate_evaluate(1, [np.zeros(3)], agg).loss for _ in range(trials)])


def test_evaluation_noise_scale_matches_the_multiplier():
    w = _wrapper(inner=secagg.FedAvg(metrics=("acc",)), evaluation_noise_multiplier=0.5)
    config = w.configure_evaluate(1, [np.zeros(3)])
    losses = _evaluation_noise(w, config, [np.array([1.0, 0.5]), np.array([3.0, 0.5])], 4000)
    noise_on_sum = (losses - 2.0) * 2  # the mean over the 2 clients is 2.0
    sigma = 0.5 * np.hypot(10.0, 1.0)
    # 4,000 draws: the sample std is within 5% of the target with overwhelming probability
    assert np.std(noise_on_sum) == pytest.approx(sigma, rel=0.05)
    assert abs(np.mean(noise_on_sum)) < 5 * sigma / np.sqrt(4000)
    assert w.evaluations_accounted == 4000 and w.rounds_accounted == 0


def test_central_server_clamps_each_evaluation_itself():
    w = _wrapper(dp.CentralFixedClipping, inner=secagg.FedAvg(metrics=("acc",)),
                 evaluation_noise_multiplier=1e-9)
    agg = aggregate({0: (np.array([1e9, 40.0]), 1.0), 1: (np.array([2.0, 0.5]), 1.0)},
                    backend=secagg.CollectingBackend())  # a client that did not clamp
    result = w.aggregate_evaluate(1, [np.zeros(3)], agg)
    assert result.loss == pytest.approx(6.0) and result.metrics["acc"] == pytest.approx(0.75)


def test_local_dp_evaluation_is_noised_by_each_client():
    w = _wrapper(dp.LocalDifferentialPrivacy)
    config = w.configure_evaluate(1, [np.zeros(3)])
    noisy = secagg.apply_update_transforms(np.zeros(40_000), config, np.random.default_rng(4))
    assert np.std(noisy) == pytest.approx(1.5 * 10.0, rel=0.02)  # z * the loss bound (no metrics)
    agg = aggregate({0: (np.array([1.0]), 1.0), 1: (np.array([2.0]), 1.0)})
    assert w.aggregate_evaluate(1, [np.zeros(3)], agg).loss == 1.5  # the server adds nothing
    assert w.evaluations_accounted == 1
    assert w.epsilon == pytest.approx(
        RdpAccountant().compose(Gaussian(noise_multiplier=0.75), 1).get_epsilon(1e-5))


def test_evaluation_off_and_unprotected():
    assert _wrapper(evaluation="off").configure_evaluate(1, [np.zeros(3)]) is None
    w = _wrapper(evaluation="unprotected")
    config = w.configure_evaluate(1, [np.zeros(3)])
    assert "blindsum.transforms" not in config and "blindsum.weighting" not in config
    agg = aggregate({0: (np.array([1.0]), 1.0), 1: (np.array([4.0]), 3.0)})
    assert w.aggregate_evaluate(1, [np.zeros(3)], agg).loss == pytest.approx(13 / 4)
    assert w.evaluations_accounted == 0
    with pytest.raises(DPValueError, match="evaluation must be one of"):
        _wrapper(evaluation="sometimes")
    with pytest.raises(DPValueError, match="evaluation_loss_bound"):
        _wrapper(evaluation_loss_bound=float("inf"))


def test_budget_skips_an_evaluation_it_cannot_afford():
    probe = _wrapper(evaluation="off")
    w = _wrapper(epsilon_budget=probe.epsilon_after(1) * 1.01)
    with pytest.raises(BudgetExceededError):  # a round with its evaluation does not fit
        w.configure_fit(1, [np.zeros(3)])
    w = _wrapper(epsilon_budget=(_wrapper().epsilon_after(1) + probe.epsilon_after(1)) / 2,
                 evaluation_noise_multiplier=3.0)
    w.configure_fit(1, [np.zeros(3)])
    w._spend(aggregate({0: (np.zeros(3), 1.0)}))
    assert w.configure_evaluate(1, [np.zeros(3)]) is not None  # z=3 evaluation fits
    w._ledger.events.append(w.evaluation_event(10))
    assert w.configure_evaluate(1, [np.zeros(3)]) is None  # a second one would not


def test_state_dict_keeps_rounds_and_evaluations_apart():
    clients = {c: _Client(c) for c in range(10)}
    w = _wrapper()
    secagg.run_federated(w, clients, [np.zeros(3)], rounds=2, rng=np.random.default_rng(0))
    fresh = _wrapper()
    fresh.load_state_dict(w.state_dict())
    assert (fresh.rounds_accounted, fresh.evaluations_accounted) == (2, 2)
    assert fresh.epsilon == pytest.approx(w.epsilon)
    bad = w.state_dict() | {"rounds": 5}
    with pytest.raises(DPValueError, match="rounds must be in 0..4"):
        _wrapper().load_state_dict(bad)


def test_a_sampled_evaluation_claims_no_amplification():
    w = _wrapper(inner=secagg.FedAvg(fraction_evaluate=0.3))
    assert w.evaluation_event(10) == Gaussian(noise_multiplier=1.5)
    assert w.evaluation_event(3) == Gaussian(noise_multiplier=0.75)  # replace-one, unsampled
    assert w.epsilon_after(1) == pytest.approx(RdpAccountant().compose(
        Gaussian(noise_multiplier=1.5)).compose(Gaussian(noise_multiplier=0.75)).get_epsilon(1e-5))


@pytest.mark.parametrize("cls", [dp.ClientSideFixedClipping, dp.ClientSideAdaptiveClipping,
                                 dp.CentralFixedClipping])
def test_pld_with_a_fixed_size_sample_is_refused_before_any_round(cls):
    # PLD has no bound for sampling without replacement: this used to fail with
    # UnsupportedEventError in configure_fit or after a round's aggregation
    with pytest.raises(DPValueError, match="accountant='rdp'"):
        cls(secagg.FedAvg(fraction_fit=0.5), noise_multiplier=1.0, clipping_norm=1.0,
            num_clients=10, accountant="pld")
    w = cls(secagg.FedAvg(), noise_multiplier=1.0, clipping_norm=1.0, num_clients=10,
            accountant="pld")
    with pytest.raises(DPValueError, match="samples 5 of 10 clients"):
        w.fit_sampled(1, num_available=10, num_sampled=5)
    w.fit_sampled(1, num_available=10, num_sampled=10)  # everyone: a Gaussian, fine
    rdp = cls(secagg.FedAvg(fraction_fit=0.5), noise_multiplier=1.0, clipping_norm=1.0,
              num_clients=10, accountant="rdp")
    assert rdp.epsilon_after(1) > 0
