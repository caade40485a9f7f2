"""Distributed DP over SecAgg+: noise added by clients, exact accounting of survivors."""

import dataclasses
import json

import numpy as np
import pytest

import secagg
from dp import noise_std_target
from dp._ddp_backend import DistributedDPBackend
from transport.cli import main


@pytest.mark.parametrize("mechanism", ["dgauss", "skellam"])
def test_aggregate_noise_has_the_target_std(mechanism):
    backend = DistributedDPBackend(mechanism=mechanism, noise_multiplier=0.5, clip=10.0, bits=20)
    out = secagg.simulate(clients=20, dim=4000, backend=backend, seed=5)
    _, cfg = backend.round_parameters(num_clients=20, dim=4000)
    measured = np.std(out.aggregate - out.expected)
    target = noise_std_target(cfg)
    # 4000 coordinates: the sample std is within ~2.3% (2 sigma); rounding adds < 0.1%
    assert abs(measured / target - 1) < 0.035
    assert out.total_weight == 20


def test_dropouts_within_the_threshold_never_lower_the_accounted_noise():
    backend = DistributedDPBackend(noise_multiplier=1.0, clip=5.0, bits=20, expected_dropout=0.25)
    _, cfg = backend.round_parameters(num_clients=16, dim=2000)
    assert cfg.expected_clients == 12 and cfg.min_clients == 12
    drops = {c: "masked" for c in (0, 3, 5, 9)}  # exactly the expected dropout
    out = secagg.simulate(clients=16, dim=2000, backend=backend, dropouts=drops, seed=1)
    assert len(out.survivors) == 12
    assert np.std(out.aggregate - out.expected) > 0.97 * noise_std_target(cfg)
    # one more dropout than the threshold allows: the round fails instead of releasing
    drops[11] = "masked"
    with pytest.raises(secagg.RecoveryError):
        secagg.simulate(clients=16, dim=2000, backend=backend, dropouts=drops, seed=1)


def test_client_refuses_a_round_with_a_lowered_threshold():
    backend = DistributedDPBackend(noise_multiplier=1.0, clip=1.0, bits=20)
    rng = np.random.default_rng(0)
    server = backend.server_session(round_id=3, client_ids=tuple(range(5)), dim=10, rng=rng)
    request = server.next_messages()[0]
    weaker = dataclasses.replace(request, config=dataclasses.replace(request.config, threshold=2))
    client = backend.client_session(client_id=0, vector=np.ones(10), weight=1, rng=rng)
    with pytest.raises(secagg.RemoteProtocolError, match="differs"):
        client.receive(weaker)


def test_bits_too_small_is_refused_with_the_parameter_named():
    backend = DistributedDPBackend(noise_multiplier=1.0, clip=1.0, bits=4)
    with pytest.raises(ValueError, match="bits"):
        backend.round_parameters(num_clients=1000, dim=100)


def test_simulate_cli_reports_dp(capsys):
    code = main(["simulate", "--clients", "12", "--dim", "300", "--dp", "skellam",
                 "--noise-multiplier", "1.0", "--clip", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    d = out["dp"]
    for key in ("noise_std_target", "noise_std_measured", "epsilon", "delta"):
        assert key in d
    assert d["noise_std_target"] == pytest.approx(3.0, rel=1e-6)
    assert 0.8 < d["noise_std_measured"] / d["noise_std_target"] < 1.2
    assert d["epsilon"] > 0
