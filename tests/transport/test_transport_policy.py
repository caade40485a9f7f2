"""A client's SecAgg+ policy from the outside: ClientRuntime(policy=...), the distributed-DP
backend, and the `blindsum client` flags."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transport_testkit as kit

import dp
import secagg
import transport
from transport.cli import build_parser, main

BASE = ["client", "--app", f"{Path(__file__).parent / 'transport_cli_app.py'}:client_app", "--id", "1"]


def test_a_client_refuses_a_round_below_its_policy_and_the_round_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    # the coordinator's threshold 2 of 4 shares: client 0 wants at least 3 and aborts at
    # advertise_keys; the others finish the round without it
    backend = secagg.SecAggPlusBackend(neighbours="all", threshold=2, clip=10.0, max_weight=10)
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=backend, config=kit.config(clients_per_round=4))
    policy = secagg.ClientPolicy(min_threshold=3)
    runtimes = {c: kit.runtime(c, policy=policy if c == 0 else None) for c in range(4)}
    with caplog.at_level(logging.INFO):
        summary, clients, _ = asyncio.run(kit.run_federation(kit.InProcHarness(), coord, runtimes))
    said = [r.getMessage() for r in caplog.records]
    assert any("client 0 refuses: threshold 2 is below min_threshold 3" in line for line in said), said
    rec = summary.log[-1]
    assert rec.completed and rec.contributors == (1, 2, 3)
    assert rec.dropped == {"advertise_keys": (0,)}
    for arr in coord.parameters:
        np.testing.assert_allclose(arr, kit.expected_mean([1, 2, 3]), atol=1e-3)
    assert all(isinstance(s, transport.ClientSummary) and s.finished for s in clients.values())


def test_the_policy_does_not_reach_backends_without_secagg_and_is_given_once() -> None:
    policy = secagg.ClientPolicy(min_threshold=3)
    rt = transport.ClientRuntime(client_id=1, fit=kit.shift_fit(1), connector=None,  # type: ignore[arg-type]
                                 policy=policy)
    rng = np.random.default_rng(0)
    session = rt._session(secagg.SecAggPlusBackend(), np.zeros(3), 1.0, rng)
    assert isinstance(session, secagg.SecAggPlusClient) and session.policy is policy
    rt._session(secagg.PlainBackend(), np.zeros(3), 1.0, rng)  # no policy= for plain: no TypeError
    with pytest.raises(transport.ConfigError, match="policy once"):
        transport.ClientRuntime(client_id=1, fit=kit.shift_fit(1), connector=None,  # type: ignore[arg-type]
                                policy=policy, session_options={"policy": policy})


def test_a_distributed_dp_client_applies_its_policy_to_the_secagg_round_underneath() -> None:
    backend = dp.DistributedDPBackend(noise_multiplier=1.0, clip=1.0, expected_dropout=0.5)
    server = backend.server_session(round_id=3, client_ids=tuple(range(4)), dim=5,
                                    rng=np.random.default_rng(0))
    request = server.next_messages()[0]
    assert request.config.threshold == 2  # ceil(4 * (1 - 0.5))
    client = backend.client_session(client_id=0, vector=np.zeros(5), weight=1,
                                    rng=np.random.default_rng(1),
                                    policy=secagg.ClientPolicy(min_threshold=3))
    with pytest.raises(secagg.RemoteProtocolError, match="threshold 2 is below min_threshold 3"):
        client.receive(request)
    plain = backend.client_session(client_id=0, vector=np.zeros(5), weight=1,
                                   rng=np.random.default_rng(1))
    plain.receive(request)  # without the policy the same round is joined


POLICY_FLAGS = ["--min-threshold", "4", "--min-threshold-fraction", "0.5",
                "--min-neighbours", "6", "--max-neighbours", "200"]


def test_client_policy_flags_parse_and_reach_run_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from transport import _run
    from transport._cli_transport import _client_policy

    base = BASE
    assert _client_policy(build_parser().parse_args(base)) is None  # no flags, no policy
    want = secagg.ClientPolicy(min_threshold=4, min_threshold_fraction=0.5, min_neighbours=6,
                               max_neighbours=200)
    assert _client_policy(build_parser().parse_args([*base, *POLICY_FLAGS])) == want
    seen: dict[str, Any] = {}

    def fake_run_client(**kwargs: Any) -> transport.ClientSummary:
        seen.update(kwargs)
        return transport.ClientSummary(client_id=kwargs["client_id"], finished=True)

    monkeypatch.setattr(_run, "run_client", fake_run_client)
    assert main([*base, *POLICY_FLAGS]) == 0
    assert seen["policy"] == want


def test_client_policy_flags_that_cannot_work_are_errors(capsys: pytest.CaptureFixture[str]) -> None:
    base = BASE
    assert main([*base, "--colluding-neighbours", "0"]) == 2
    assert "--colluding-neighbours bounds authenticated rounds" in capsys.readouterr().err
    assert main([*base, "--min-threshold-fraction", "1.5"]) == 2
    assert "min_threshold_fraction must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert main([*base, "--min-threshold", "1"]) == 2
    assert "min_threshold must be >= 2, got 1" in capsys.readouterr().err


def test_coordinator_threat_flag_reaches_the_parameter_finder() -> None:
    """`--threat semi-malicious` gives the finder's semi-malicious k and t (docs/transport.md
    pairs it with the clients' --colluding-neighbours); the default stays semi-honest."""
    from transport._cli_transport import _backend_options

    common = ["coordinator", "--app", "x:y", "--backend", "secagg+"]
    parser = build_parser()
    assert _backend_options(parser.parse_args(common))["threat"] == "semi-honest"
    options = _backend_options(parser.parse_args([*common, "--threat", "semi-malicious"]))
    backend = transport.resolve_backend("secagg+", **options)
    cfg = backend.round_config(round_id=0, num_clients=100, dim=1)
    found = secagg.find_parameters(clients=100, dropout=0.1, corrupt=0.05, threat="semi-malicious")
    assert (cfg.neighbours, cfg.threshold) == (found.neighbours, found.threshold)
    assert 2 * cfg.threshold - (cfg.neighbours + 1) > 0  # what --colluding-neighbours 0 asks
