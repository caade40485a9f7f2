"""Distributed DP over the transport: clients that hold their own ``secagg+ddp``
backend (the noise they add is theirs to decide) join a coordinator whose strategy is
:class:`dp.DistributedDP`, in process and through the ``blindsum`` CLI; a client whose
noise differs from the strategy's refuses the round before training, saying why."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
import transport_testkit as kit

import dp
import secagg
import transport

DIM = 6


class Client:
    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.fits = 0

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        self.fits += 1
        return [parameters[0] + 0.1 * (self.cid + 1)], 1, {}


def strategy() -> dp.DistributedDP:
    return dp.DistributedDP(secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1.0,
                            clipping_norm=1.0, clients_per_round=4)


def test_ddp_backend_resolves_by_name_with_the_clients_noise() -> None:
    backend = transport.resolve_backend("secagg+ddp", noise_multiplier=1.0, clip=1.0)
    assert isinstance(backend, dp.DistributedDPBackend) and backend.name == "secagg+ddp"
    assert "secagg+ddp" in transport.available_backends()
    with pytest.raises(transport.ConfigError, match="--ddp-noise-multiplier"):
        transport.resolve_backend("secagg+ddp")


def test_check_fit_config_names_each_difference() -> None:
    mine = dp.DistributedDPBackend(noise_multiplier=0.5, clip=1.0)
    config = strategy().configure_fit(1, [np.zeros(DIM)])
    with pytest.raises(dp.DPValueError, match=r"noise_multiplier 1\.0 \(this client: 0\.5\)"):
        mine.check_fit_config(config)
    dp.DistributedDPBackend(noise_multiplier=1.0, clip=1.0).check_fit_config(config)  # agrees


def test_clients_with_their_own_ddp_backend_run_rounds_and_a_mismatch_is_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    coord = transport.Coordinator(
        strategy=strategy(), parameters=[np.zeros(DIM)],
        backend=transport.resolve_backend("secagg+ddp", noise_multiplier=1.0, clip=1.0),
        config=kit.config(rounds=2, clients_per_round=4, min_clients=3))
    clients = {c: Client(c) for c in range(4)}

    def runtime(cid: int, z: float):  # type: ignore[no-untyped-def]
        def make(conn: transport.Connector) -> transport.ClientRuntime:
            return transport.ClientRuntime(
                client_id=cid, fit=clients[cid].fit, connector=conn, backoff=kit.FAST, seed=cid,
                backend=transport.resolve_backend("secagg+ddp", noise_multiplier=z, clip=1.0))
        return make

    runtimes = {c: runtime(c, 1.0 if c < 3 else 0.5) for c in range(4)}
    with caplog.at_level(logging.WARNING):
        summary, _, _ = asyncio.run(kit.run_federation(kit.InProcHarness(), coord, runtimes))
    assert summary.rounds_completed == 2 and summary.backend == "secagg+ddp"
    assert all(3 not in rec.contributors and len(rec.contributors) == 3 for rec in summary.log)
    assert clients[3].fits == 0  # refused before training
    assert "noise_multiplier 1.0 (this client: 0.5)" in caplog.text
    # each round adds the mean of 0.1, 0.2, 0.3 plus noise of std 1.0 / 3 per coordinate
    mean = secagg.flatten(coord.parameters).mean()
    assert abs(mean - 2 * 0.2) < 6 * (2 ** 0.5 / 3) / DIM ** 0.5


def test_cli_runs_distributed_dp_rounds() -> None:
    from test_transport_cli_restart import APP, blindsum, free_port

    port = free_port()
    ddp = ["--ddp-noise-multiplier", "1.0", "--ddp-clip", "1.0"]
    coordinator = blindsum(
        "coordinator", "--app", f"{APP}:ddp_server_app", "--address", f"127.0.0.1:{port}",
        "--rounds", "2", "--clients-per-round", "3", "--min-clients", "3", "--backend",
        "secagg+ddp", *ddp, "--dropout", "0", "--json")
    clients = [blindsum("client", "--app", f"{APP}:client_app", "--address", f"127.0.0.1:{port}",
                        "--id", str(c), "--json", "--give-up-after", "30", *ddp)
               for c in range(3)]
    try:
        out, err = coordinator.communicate(timeout=120)
        assert coordinator.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["rounds_completed"] == 2 and summary["backend"] == "secagg+ddp"
        for c in clients:
            cout, cerr = c.communicate(timeout=30)
            assert c.returncode == 0, cerr
            assert json.loads(cout.strip().splitlines()[-1])["rounds_completed"] == 2
    finally:
        for p in (coordinator, *clients):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_coordinator_takes_the_clients_ddp_expected_dropout_flag() -> None:
    """The docs give both commands `--ddp-expected-dropout`; the coordinator's falls back
    to `--dropout` (its older spelling for distributed DP)."""
    from transport._cli_transport import _backend_options
    from transport.cli import build_parser

    common = ["coordinator", "--app", "x:y", "--backend", "secagg+ddp",
              "--ddp-noise-multiplier", "1.0", "--ddp-clip", "1.0"]
    parser = build_parser()
    given = _backend_options(parser.parse_args([*common, "--ddp-expected-dropout", "0.2"]))
    assert given["expected_dropout"] == 0.2
    assert transport.resolve_backend("secagg+ddp", **given).expected_dropout == 0.2
    assert _backend_options(parser.parse_args([*common, "--dropout", "0.3"]))["expected_dropout"] == 0.3
    client = parser.parse_args(["client", "--app", "x:y", "--id", "1",
                                "--ddp-expected-dropout", "0.2"])
    assert client.ddp_expected_dropout == 0.2
