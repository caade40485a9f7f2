"""The coordinator follows the strategy contract (docs/strategies.md, "What a
coordinator does each round"): the strategy's backend per round, ``fit_dim``,
``client_weight``, a DP budget stop, failed rounds on ``RecoveryError``, and
federated plus server-side evaluation, recorded and checkpointed.

Models are compared with :func:`secagg.run_federated` and with the exact weighted
means; tolerances are the quantisation bounds (SecAgg+ with 3 clients: about 1e-8).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
import transport_testkit as kit

import dp
import secagg
import transport
from secagg import AggregateResult, Config, Parameters
from secagg._strategy import EXTRA_COORDINATES_KEY, TRANSFORMS_KEY

DIRECTION = np.linspace(-1.0, 1.0, 9)  # norm ~1.94


def params0() -> Parameters:
    return [np.zeros((2, 3)), np.zeros(3)]


@dataclasses.dataclass
class Client:
    """Moves the parameters by ``(cid + 1) / 4 * DIRECTION``; evaluates to known values."""

    cid: int

    def delta(self) -> np.ndarray:
        return (self.cid + 1) / 4 * DIRECTION

    def fit(self, parameters: Parameters, config: Config
            ) -> tuple[Parameters, int, Mapping[str, float]]:
        new = secagg.flatten(parameters) + self.delta()
        return secagg.unflatten(new, parameters), self.cid + 1, {}

    def evaluate(self, parameters: Parameters, config: Config
                 ) -> tuple[float, float, Mapping[str, float]]:
        loss = 0.5 * self.cid + float(np.sum(secagg.flatten(parameters)))
        return loss, 2.0 * self.cid + 1.0, {"acc": self.cid / 10}


def clipped_mean(cids: list[int], clip: float) -> np.ndarray:
    updates = [Client(c).delta() for c in cids]
    return np.mean([u * min(1.0, clip / np.linalg.norm(u)) for u in updates], axis=0)


def runtime(client: Client, *, evaluates: bool = True
            ) -> Callable[[transport.Connector], transport.ClientRuntime]:
    def make(conn: transport.Connector) -> transport.ClientRuntime:
        return transport.ClientRuntime(
            client_id=client.cid, fit=client.fit, connector=conn, backoff=kit.FAST,
            seed=client.cid, evaluate=client.evaluate if evaluates else None)

    return make


def federate(harness: kit.InProcHarness | kit.GrpcHarness, coord: transport.Coordinator,
             runtimes: dict) -> tuple[transport.RunSummary, dict]:
    summary, clients, _ = asyncio.run(kit.run_federation(harness, coord, runtimes))
    return summary, clients


def dp_secagg(budget: float | None = None) -> secagg.SecureAggregation:
    inner = dp.ClientSideFixedClipping(
        secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1e-6, clipping_norm=1.0,
        num_clients=3, rng=np.random.default_rng(7), epsilon_budget=budget)
    return secagg.SecureAggregation(inner)


def test_secure_dp_fedavg_matches_run_federated() -> None:
    coord = transport.Coordinator(
        strategy=dp_secagg(), parameters=params0(),
        backend=transport.resolve_backend("secagg+"), config=kit.config(rounds=2))
    summary, clients = federate(kit.InProcHarness(), coord,
                                {c: runtime(Client(c)) for c in range(3)})
    assert summary.rounds_completed == 2 and summary.backend == "secagg+"
    assert all(rec.contributors == (0, 1, 2) for rec in summary.log)
    assert all(s.finished and s.rounds_completed == 2 for s in clients.values())
    want, _ = secagg.run_federated(dp_secagg(), {c: Client(c) for c in range(3)}, params0(),
                                   rounds=2, rng=np.random.default_rng(1),
                                   default_backend=transport.resolve_backend("secagg+"))
    got = secagg.flatten(coord.parameters)
    # clipped updates, weight 1 each (client_weight under DP): exact up to 1e-6 noise
    np.testing.assert_allclose(got, 2 * clipped_mean([0, 1, 2], 1.0), atol=1e-5)
    # the same noise draws: the two differ by quantisation only
    np.testing.assert_allclose(got, secagg.flatten(want), atol=1e-6)


def test_dp_federated_evaluation_over_the_transport_is_clamped_noised_and_accounted() -> None:
    inner = dp.ClientSideFixedClipping(
        secagg.FedAvg(metrics=("acc",)), noise_multiplier=1.0, clipping_norm=1.0, num_clients=3,
        rng=np.random.default_rng(7), evaluation_noise_multiplier=1e-7, evaluation_loss_bound=1.0)
    coord = transport.Coordinator(
        strategy=secagg.SecureAggregation(inner), parameters=params0(),
        backend=transport.resolve_backend("secagg+"), config=kit.config(rounds=2))
    summary, _ = federate(kit.InProcHarness(), coord, {c: runtime(Client(c)) for c in range(3)})
    assert summary.rounds_completed == 2
    assert inner.rounds_accounted == 2 and inner.evaluations_accounted == 2
    last = summary.log[-1].federated_evaluation
    assert last is not None and last.num_clients == 3
    # every client's loss is below -1.0 after two rounds: clamped to -1, weighed 1 each
    assert max(Client(c).evaluate(coord.parameters, {})[0] for c in range(3)) < -1.0
    assert last.loss == pytest.approx(-1.0, abs=1e-4)
    assert last.metrics["acc"] == pytest.approx((0.0 + 0.1 + 0.2) / 3, abs=1e-4)
    assert last.num_examples == pytest.approx(3.0)


def test_backend_name_must_match_the_coordinators() -> None:
    with pytest.raises(transport.ConfigError, match=r"'secagg\+'.*'plain'"):
        transport.Coordinator(strategy=dp_secagg(), parameters=params0(),
                              backend=secagg.PlainBackend(), config=kit.config())


def test_budget_exhausted_stops_training_and_keeps_the_model() -> None:
    probe = dp.ClientSideFixedClipping(secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1.0,
                                       clipping_norm=1.0, num_clients=3)
    budget = (probe.epsilon_after(2) + probe.epsilon_after(3)) / 2
    strategy = dp.ClientSideFixedClipping(
        secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1.0, clipping_norm=1.0,
        num_clients=3, epsilon_budget=budget,
        rng=np.random.default_rng(3))
    coord = transport.Coordinator(strategy=strategy, parameters=params0(),
                                  backend=secagg.PlainBackend(), config=kit.config(rounds=5))
    summary, clients = federate(kit.InProcHarness(), coord,
                                {c: runtime(Client(c)) for c in range(3)})
    assert summary.rounds_completed == 2 and len(summary.log) == 2
    assert "budget" in summary.stopped and "round 3" in summary.stopped
    assert strategy.rounds_accounted == 2 and strategy.epsilon <= budget
    assert np.any(secagg.flatten(coord.parameters) != 0)  # two rounds' model kept
    assert all(s.finished and s.rounds_fitted == 2 for s in clients.values())


class _Unrecoverable:
    """A server session whose result raises RecoveryError (too few shares)."""

    def __init__(self, inner: secagg.ServerSession) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def result(self) -> AggregateResult:
        raise secagg.RecoveryError("cannot unmask", {(1, "self_mask"): (1, 2)})


class FailsFirstRound:
    """Plain aggregation whose first server session cannot recover."""

    name = "plain"

    def __init__(self) -> None:
        self.sessions = 0

    def server_session(self, **kw: object) -> secagg.ServerSession:
        self.sessions += 1
        inner = secagg.PlainBackend().server_session(**kw)  # type: ignore[arg-type]
        return inner if self.sessions > 1 else _Unrecoverable(inner)  # type: ignore[return-value]

    def client_session(self, **kw: object) -> secagg.ClientSession:
        return secagg.PlainBackend().client_session(**kw)  # type: ignore[arg-type]


def _append_one(update: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    return np.append(update, 1.0)


class ChoosingAvg(kit.TinyAvg):
    """Chooses its backend per round and asks clients to append one coordinate."""

    def __init__(self) -> None:
        super().__init__()
        self.chosen = FailsFirstRound()
        self.calls: list[tuple[int, int, str]] = []

    def backend(self, *, server_round: int, num_clients: int, purpose: str = "fit"
                ) -> secagg.Backend | None:
        self.calls.append((server_round, num_clients, purpose))
        return self.chosen  # type: ignore[return-value]

    def configure_fit(self, server_round: int, parameters: Parameters) -> dict:  # type: ignore[override]
        return {TRANSFORMS_KEY: "test.append_one", EXTRA_COORDINATES_KEY: 1}

    def aggregate_fit(self, server_round: int, parameters: Parameters,
                      aggregate: AggregateResult) -> Parameters:
        self.aggregates.append(aggregate)
        mean = aggregate.mean
        return secagg.unflatten(secagg.flatten(parameters) + mean[:-1], parameters)


def test_recovery_error_fails_the_round_and_the_strategys_backend_is_used() -> None:
    secagg.register_update_transform("test.append_one", _append_one)
    strategy = ChoosingAvg()
    coord = transport.Coordinator(strategy=strategy, parameters=params0(),
                                  backend=secagg.PlainBackend(), config=kit.config(rounds=1))
    summary, _ = federate(kit.InProcHarness(), coord, {c: runtime(Client(c)) for c in range(3)})
    failed, done = summary.log
    assert failed.status == "failed" and "RecoveryError" in failed.detail
    assert "cannot unmask" in failed.detail and failed.contributors == ()
    assert done.completed and summary.rounds_completed == 1
    # the failed round never reached aggregate_fit; the model moved once
    assert len(strategy.aggregates) == 1
    assert strategy.calls[-2:] == [(1, 3, "fit"), (1, 3, "fit")]
    assert strategy.chosen.sessions == 2
    agg = strategy.aggregates[0]
    assert agg.weighted_sum.shape == (10,)  # fit_dim: 9 parameters + 1 appended
    assert agg.mean[-1] == pytest.approx(1.0)
    weights = {c: c + 1 for c in range(3)}  # client_weight: num_examples
    want = sum(weights[c] * Client(c).delta() for c in range(3)) / sum(weights.values())
    np.testing.assert_allclose(secagg.flatten(coord.parameters), want, rtol=1e-9)


def _evaluating_fedavg() -> secagg.FedAvg:
    return secagg.FedAvg(metrics=("acc",), fraction_evaluate=1.0, min_evaluate_clients=2,
                         evaluate_fn=lambda r, p: (float(np.sum(secagg.flatten(p))),
                                                   {"round": float(r)}))


def _expected_evaluation(cids: list[int], params: Parameters) -> tuple[float, float, float]:
    total = float(np.sum(secagg.flatten(params)))
    w = np.array([2.0 * c + 1.0 for c in cids])
    loss = np.array([0.5 * c + total for c in cids])
    acc = np.array([c / 10 for c in cids])
    return float(w @ loss / w.sum()), float(w @ acc / w.sum()), float(w.sum())


def test_federated_and_server_evaluation_are_recorded(tmp_path: Path) -> None:
    strategy = _evaluating_fedavg()
    coord = transport.Coordinator(
        strategy=strategy, parameters=params0(), backend=secagg.PlainBackend(),
        config=kit.config(rounds=2, clients_per_round=4), store=transport.Store(tmp_path))
    runtimes = {c: runtime(Client(c), evaluates=c != 3) for c in range(4)}
    summary, clients = federate(kit.InProcHarness(), coord, runtimes)
    assert summary.rounds_completed == 2
    for rec in summary.log:
        assert rec.evaluation_round_id == rec.round_id + 1
        fed, server = rec.federated_evaluation, rec.server_evaluation
        assert fed is not None and server is not None
        assert fed.num_clients == 3 and rec.evaluation_dropped == {"evaluate": (3,)}
        assert server.metrics == {"round": float(rec.server_round)}
    # the model after each round and the evaluation of it
    x = np.zeros(9)
    weights = {c: c + 1 for c in range(4)}
    mean = sum(weights[c] * Client(c).delta() for c in range(4)) / sum(weights.values())
    for rec in summary.log:
        x = x + mean
        fed, server = rec.federated_evaluation, rec.server_evaluation
        assert fed is not None and server is not None
        loss, acc, n = _expected_evaluation([0, 1, 2], secagg.unflatten(x, params0()))
        assert fed.loss == pytest.approx(loss, rel=1e-9)
        assert fed.metrics["acc"] == pytest.approx(acc, rel=1e-9)
        assert fed.num_examples == pytest.approx(n)
        assert server.loss == pytest.approx(float(x.sum()), abs=1e-9)
    assert summary.last_federated_evaluation == summary.log[-1].federated_evaluation
    assert [clients[c].rounds_evaluated for c in range(4)] == [2, 2, 2, 0]
    assert all(clients[c].rounds_completed == 2 for c in range(4))
    # checkpointed, and the round ids of the evaluations are never reused
    checkpoint = transport.Store(tmp_path).load()
    assert checkpoint is not None
    for stored, rec in zip(checkpoint.log, summary.log, strict=True):
        assert stored.federated_evaluation == rec.federated_evaluation
        assert stored.server_evaluation == rec.server_evaluation
        assert stored.evaluation_round_id == rec.evaluation_round_id
        assert stored.evaluation_dropped == rec.evaluation_dropped
    assert checkpoint.next_round_id == summary.log[-1].evaluation_round_id + 1  # type: ignore[operator]


def test_old_checkpoint_records_still_load() -> None:
    rec = transport.RoundRecord(server_round=1, round_id=3, status="completed", sampled=(1, 2))
    old = {k: v for k, v in rec.to_json().items()
           if not k.startswith(("evaluation_", "server_evaluation", "federated_evaluation"))}
    assert "federated_evaluation" not in old
    assert transport.RoundRecord.from_json(old) == rec


def test_secure_evaluation_over_grpc_matches_run_federated() -> None:
    def strategy() -> secagg.SecureAggregation:
        return secagg.SecureAggregation(_evaluating_fedavg())

    coord = transport.Coordinator(strategy=strategy(), parameters=params0(),
                                  backend=transport.resolve_backend("secagg+"),
                                  config=kit.config(rounds=1))
    summary, _ = federate(kit.GrpcHarness(), coord, {c: runtime(Client(c)) for c in range(3)})
    assert summary.rounds_completed == 1
    want, logs = secagg.run_federated(strategy(), {c: Client(c) for c in range(3)}, params0(),
                                      rounds=1, rng=np.random.default_rng(1),
                                      default_backend=transport.resolve_backend("secagg+"))
    # FedAvg weights (num_examples, max_weight 1024) in 32-bit words: each run is within
    # 1 / scale = 3 clients * 1024 * clip 8 / 2^31 ~ 1.2e-5 of the exact mean
    np.testing.assert_allclose(secagg.flatten(coord.parameters), secagg.flatten(want),
                               atol=2.5e-5)
    fed = summary.log[0].federated_evaluation
    ref = logs[0].federated_evaluation
    assert fed is not None and ref is not None and fed.num_clients == 3
    loss, acc, n = _expected_evaluation([0, 1, 2], coord.parameters)
    assert fed.loss == pytest.approx(loss, abs=1e-6)
    assert fed.metrics["acc"] == pytest.approx(acc, abs=1e-6)
    # run_federated's clients evaluated its own model: the loss sums 9 coordinates
    assert fed.loss == pytest.approx(ref.loss, abs=9 * 2.5e-5)
    server = summary.log[0].server_evaluation
    assert server is not None
    assert server.loss == pytest.approx(float(np.sum(secagg.flatten(coord.parameters))))


def test_client_functions_from_an_app() -> None:
    from transport._run import client_functions

    client = Client(1)
    assert client_functions(client) == (client.fit, client.evaluate)
    assert client_functions(client.fit) == (client.fit, None)
    with pytest.raises(transport.ConfigError, match="fit method"):
        client_functions(42)


@pytest.mark.slow
def test_cli_budget_stop_exits_0_and_reports_the_evaluation() -> None:
    from test_transport_cli_restart import APP, blindsum, free_port

    port = free_port()
    coordinator = blindsum(
        "coordinator", "--app", f"{APP}:budget_server_app", "--address", f"127.0.0.1:{port}",
        "--rounds", "4", "--clients-per-round", "2", "--json")
    clients = [blindsum("client", "--app", f"{APP}:evaluating_client_app", "--address",
                        f"127.0.0.1:{port}", "--id", str(c), "--json", "--give-up-after", "30")
               for c in range(2)]
    try:
        out, err = coordinator.communicate(timeout=90)
        assert coordinator.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["rounds_completed"] == 1 and "budget" in summary["stopped"]
        fed = summary["federated_evaluation"]
        assert fed["loss"] == pytest.approx(0.5) and fed["metrics"] == {"acc": 0.5}
        for c in clients:
            cout, cerr = c.communicate(timeout=30)
            assert c.returncode == 0, cerr
            assert json.loads(cout.strip().splitlines()[-1])["rounds_evaluated"] == 1
    finally:
        for p in (coordinator, *clients):
            if p.poll() is None:
                p.kill()
                p.wait()


class RefusesFirstAggregate(kit.TinyAvg):
    """Refuses (ValueError) the first fit aggregate and the first evaluation."""

    metrics = ()

    def aggregate_fit(self, server_round, parameters, aggregate):  # type: ignore[no-untyped-def]
        if not self.aggregates:
            self.aggregates.append(aggregate)
            raise ValueError("weights are not uniform")
        return super().aggregate_fit(server_round, parameters, aggregate)

    def configure_evaluate(self, server_round, parameters):  # type: ignore[no-untyped-def]
        return {}

    def aggregate_evaluate(self, server_round, parameters, aggregate):  # type: ignore[no-untyped-def]
        raise ValueError("evaluation weights are not uniform")

    def evaluate(self, server_round, parameters):  # type: ignore[no-untyped-def]
        return None

    def num_fit_clients(self, num_available):  # type: ignore[no-untyped-def]
        return num_available

    def num_evaluate_clients(self, num_available):  # type: ignore[no-untyped-def]
        return num_available


def test_a_strategy_refusing_an_aggregate_fails_the_round_not_the_coordinator() -> None:
    strategy = RefusesFirstAggregate()
    coord = transport.Coordinator(strategy=strategy, parameters=params0(),  # type: ignore[arg-type]
                                  backend=secagg.PlainBackend(), config=kit.config(rounds=1))
    summary, _ = federate(kit.InProcHarness(), coord, {c: runtime(Client(c)) for c in range(3)})
    assert summary.rounds_completed == 1 and len(summary.log) == 2
    failed, done = summary.log
    assert failed.status == "failed"
    assert "RefusesFirstAggregate.aggregate_fit refused the aggregate: weights are not uniform" \
        in failed.detail
    assert done.status == "completed" and done.federated_evaluation is None
    assert "aggregate_evaluate refused the aggregate" in done.evaluation_detail


def test_a_fit_that_trains_in_place_still_sends_its_update() -> None:
    def in_place(parameters, config):  # type: ignore[no-untyped-def]
        for p in parameters:
            p += 0.5  # the common pattern: mutate the arrays it was given, return them
        return parameters, 1, {}

    def make(cid: int):  # type: ignore[no-untyped-def]
        def build(conn: transport.Connector) -> transport.ClientRuntime:
            return transport.ClientRuntime(client_id=cid, fit=in_place, connector=conn,
                                           backoff=kit.FAST, seed=cid)
        return build

    for harness in (kit.InProcHarness(), kit.GrpcHarness()):
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=params0(),  # type: ignore[arg-type]
                                      backend=secagg.PlainBackend(), config=kit.config(rounds=2))
        summary, _ = federate(harness, coord, {c: make(c) for c in range(3)})
        assert summary.rounds_completed == 2
        np.testing.assert_allclose(secagg.flatten(coord.parameters), 1.0)  # 2 rounds of +0.5
