"""A restarted coordinator restores the strategy's state from its checkpoint: the
privacy spent (and so the budget stop), the adaptive clip and the server optimiser's
moments. The "kill" cancels the coordinator in the middle of the round after round k
and throws its strategy away; a fresh coordinator, strategy and gRPC server on the same
port continue from the SQLite checkpoint while the clients reconnect.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import transport_testkit as kit

import dp
import secagg
import transport
from transport._store import decode_state, encode_state

Make = Callable[[], secagg.Strategy]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def adaptive_adam(budget: float | None = None) -> dp.ClientSideAdaptiveClipping:
    return dp.ClientSideAdaptiveClipping(
        secagg.FedAdam(fraction_evaluate=0.0, server_learning_rate=0.1), noise_multiplier=1.0,
        clipping_norm=1.0, num_clients=3, epsilon_budget=budget, rng=np.random.default_rng(3))


def coordinator(strategy: secagg.Strategy, rounds: int, state: Path | None
                ) -> transport.Coordinator:
    return transport.Coordinator(
        strategy=strategy, parameters=kit.initial_parameters(), backend=secagg.PlainBackend(),
        config=kit.config(rounds=rounds), store=transport.Store(state) if state else None)


def uninterrupted(make: Make, rounds: int) -> tuple[transport.RunSummary, secagg.Strategy]:
    strategy = make()
    coord = coordinator(strategy, rounds, None)
    summary, _, _ = asyncio.run(kit.run_federation(
        kit.GrpcHarness(), coord, {c: kit.runtime(c) for c in range(3)}))
    return summary, strategy


async def _killed_and_resumed(make: Make, rounds: int, kill_after: int, state: Path
                              ) -> tuple[transport.RunSummary, secagg.Strategy, dict]:
    port = free_port()
    first = coordinator(make(), rounds, state)
    started = asyncio.Event()
    first.observer = lambda e: (started.set() if e.kind == "round_started"
                                and e.server_round == kill_after + 1 else None)
    server = transport.GrpcServer(first, f"127.0.0.1:{port}")
    await server.start()
    runtimes = [kit.runtime(c)(transport.GrpcConnector(f"127.0.0.1:{port}", client_id=c,
                                                       connect_timeout=5)) for c in range(3)]
    clients = [asyncio.create_task(rt.run()) for rt in runtimes]
    run = asyncio.create_task(first.run())
    await asyncio.wait_for(started.wait(), 30)
    run.cancel()  # the "kill": nothing of the first coordinator survives but its store
    await server.stop(0)
    strategy = make()
    second = coordinator(strategy, rounds, state)
    restored = {"rounds_accounted": getattr(strategy, "rounds_accounted", None),
                "epsilon": getattr(strategy, "epsilon", None),
                "clip": getattr(strategy, "current_clipping_norm", None)}
    server = transport.GrpcServer(second, f"127.0.0.1:{port}")
    await server.start()
    try:
        summary = await asyncio.wait_for(second.run(), 30)
        await asyncio.wait_for(asyncio.gather(*clients, return_exceptions=True), 15)
    finally:
        await server.stop(0.2)
    return summary, strategy, restored


def killed_and_resumed(make: Make, rounds: int, kill_after: int, state: Path
                       ) -> tuple[transport.RunSummary, secagg.Strategy, dict]:
    return asyncio.run(_killed_and_resumed(make, rounds, kill_after, state))


def test_resumed_run_reports_the_epsilon_of_an_uninterrupted_one(tmp_path: Path) -> None:
    whole, reference = uninterrupted(adaptive_adam, rounds=3)
    two, after_two = uninterrupted(adaptive_adam, rounds=2)
    summary, resumed, restored = killed_and_resumed(adaptive_adam, 3, 2, tmp_path)
    assert isinstance(reference, dp.ClientSideAdaptiveClipping)
    assert isinstance(after_two, dp.ClientSideAdaptiveClipping)
    assert isinstance(resumed, dp.ClientSideAdaptiveClipping)
    assert summary.rounds_completed == whole.rounds_completed == 3
    # the restarted strategy starts where round 2 left it, not from zero
    assert restored["rounds_accounted"] == 2 and restored["epsilon"] == after_two.epsilon > 0
    assert restored["clip"] == after_two.current_clipping_norm != 1.0
    assert resumed.rounds_accounted == reference.rounds_accounted == 3
    assert resumed.epsilon == pytest.approx(reference.epsilon, rel=1e-12)
    adam = resumed.strategy.state_dict()["optimizer"]
    assert adam["steps"] == 3 and np.all(adam["v"] > 0)


def test_budget_stop_triggers_at_the_same_round_after_a_restart(tmp_path: Path) -> None:
    probe = adaptive_adam()
    budget = (probe.epsilon_after(2) + probe.epsilon_after(3)) / 2

    def make() -> secagg.Strategy:
        return adaptive_adam(budget)

    whole, _ = uninterrupted(make, rounds=5)
    assert whole.rounds_completed == 2 and "round 3" in whole.stopped
    summary, resumed, restored = killed_and_resumed(make, 5, 1, tmp_path)
    assert restored["rounds_accounted"] == 1
    assert summary.rounds_completed == 2 and "round 3" in summary.stopped
    assert isinstance(resumed, dp.ClientSideAdaptiveClipping)
    assert resumed.rounds_accounted == 2 and resumed.epsilon <= budget
    # a third start stops at once: the checkpoint remembers the budget is spent
    again = coordinator(make(), 5, tmp_path)
    summary, _, _ = asyncio.run(kit.run_federation(kit.InProcHarness(), again, {}))
    assert summary.rounds_completed == 2 and "round 3" in summary.stopped


def test_checkpoint_that_does_not_fit_the_strategy_is_refused(tmp_path: Path) -> None:
    coord = coordinator(adaptive_adam(), 1, tmp_path)
    asyncio.run(kit.run_federation(kit.InProcHarness(), coord,
                                   {c: kit.runtime(c) for c in range(3)}))
    fixed = dp.ClientSideFixedClipping(secagg.FedAdam(), noise_multiplier=1.0,
                                       clipping_norm=1.0, num_clients=3)
    with pytest.raises(transport.ConfigError, match="ClientSideAdaptiveClipping.*"
                                                    "ClientSideFixedClipping"):
        coordinator(fixed, 2, tmp_path)
    with pytest.raises(transport.ConfigError, match="keeps none"):
        coordinator(kit.TinyAvg(), 2, tmp_path)  # type: ignore[arg-type]
    # a pre-existing checkpoint without strategy state would forget the privacy spent
    with transport.Store(tmp_path)._db as db:
        db.execute("DELETE FROM strategy_state")
    with pytest.raises(transport.ConfigError, match="forget the privacy"):
        coordinator(adaptive_adam(), 2, tmp_path)
    resumed = coordinator(secagg.FedAdam(), 2, tmp_path)  # no privacy: starts afresh
    assert resumed.completed_rounds == 1


@pytest.mark.parametrize("make", [
    lambda: secagg.FedAvgM(server_momentum=0.9, fraction_evaluate=0.0),
    lambda: secagg.FedYogi(fraction_evaluate=0.0),
    lambda: secagg.SecureAggregation(dp.DistributedDP(
        secagg.FedAvg(fraction_evaluate=0.0), noise_multiplier=1.0, clipping_norm=1.0,
        clients_per_round=3)),
    lambda: dp.CentralAdaptiveClipping(secagg.FedAdagrad(fraction_evaluate=0.0),
                                       noise_multiplier=1.0, clipping_norm=1.0, num_clients=10),
    lambda: dp.LocalDifferentialPrivacy(secagg.FedAvg(fraction_evaluate=0.0),
                                        noise_multiplier=2.0, clipping_norm=1.0, num_clients=4),
])
def test_state_survives_the_store_and_a_fresh_strategy(make: Make) -> None:
    trained = make()
    clients = {c: _Fit(c) for c in range(3)}
    secagg.run_federated(trained, clients, [np.zeros(4)], rounds=2, rng=np.random.default_rng(0))
    assert isinstance(trained, secagg.StatefulStrategy)
    state = decode_state(*encode_state(trained.state_dict()))
    fresh = make()
    assert isinstance(fresh, secagg.StatefulStrategy)
    fresh.load_state_dict(state)
    assert _plain(fresh.state_dict()) == _plain(trained.state_dict())
    for name in ("epsilon", "rounds_accounted", "current_clipping_norm"):
        assert getattr(fresh, name, None) == getattr(trained, name, None)


def test_a_state_of_another_strategy_changes_nothing() -> None:
    adam = secagg.FedAdam()
    adam.load_state_dict({"type": "FedAdam", "optimizer": {"kind": "adaptive", "m": [1.0],
                                                          "v": [2.0], "steps": 1}})
    with pytest.raises(ValueError, match="written by 'FedAvgM'"):
        adam.load_state_dict({"type": "FedAvgM", "optimizer": None})
    with pytest.raises(ValueError, match="unknown fields"):
        adam.load_state_dict({"type": "FedAdam", "optimizer": {"kind": "adaptive", "w": 1}})
    assert adam.state_dict()["optimizer"]["steps"] == 1
    wrapper = adaptive_adam()
    good = wrapper.state_dict()
    for bad, why in (({**good, "clip": -1.0}, "clip"),
                     ({**good, "events": [[{"type": "Gaussian"}, 1]]}, "fields"),
                     ({**good, "events": [[dp.event_to_json(dp.Gaussian(noise_multiplier=1.0)),
                                           0]]}, "count"),
                     ({**good, "strategy": {"type": "FedAvg", "optimizer": None}}, "FedAvg")):
        with pytest.raises(ValueError, match=why):
            wrapper.load_state_dict(bad)
        assert wrapper.state_dict() == good


def test_dp_events_round_trip_through_json() -> None:
    events = [
        dp.Gaussian(noise_multiplier=1.5),
        dp.SampledWithoutReplacement(population_size=10, sample_size=3,
                                     event=dp.Laplace(noise_multiplier=2.0)),
        dp.Composed(events=(dp.PoissonSampled(rate=0.1, event=dp.Skellam(
            mu=4.0, l1_sensitivity=2.0, l2_sensitivity=1.0)),
            dp.SelfComposed(event=dp.DiscreteGaussian(sigma=2.0, sensitivity=1.0), count=3))),
    ]
    for event in events:
        assert dp.event_from_json(dp.event_to_json(event)) == event
    with pytest.raises(dp.DPValueError, match="noise_multiplier"):
        dp.event_from_json({"event": "Gaussian", "noise_multiplier": -1.0})
    with pytest.raises(dp.DPValueError, match="'type' in"):
        dp.event_from_json({"type": "Nope"})


class _Fit:
    def __init__(self, cid: int) -> None:
        self.cid = cid

    def fit(self, parameters: secagg.Parameters, config: secagg.Config
            ) -> tuple[secagg.Parameters, int, dict]:
        return [p + 0.1 * (self.cid + 1) for p in parameters], self.cid + 1, {}


def _plain(value: object) -> object:
    """Arrays as lists, so that states compare with ``==``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def test_a_round_saved_before_its_evaluation_is_replaced_not_repeated(tmp_path: Path) -> None:
    store = transport.Store(tmp_path)
    fit = transport.RoundRecord(server_round=1, round_id=1, status="completed", sampled=(1, 2))
    state = {"type": "FedAdam", "optimizer": {"kind": "adaptive", "m": np.ones(2),
                                               "v": np.full(2, 2.0), "steps": 1}}
    store.save(completed_rounds=1, next_round_id=2, parameters=[np.ones(2)], record=fit,
               strategy_state=state)
    done = transport.RoundRecord(server_round=1, round_id=1, status="completed", sampled=(1, 2),
                                 evaluation_round_id=2, evaluation_detail="completed")
    store.save(completed_rounds=1, next_round_id=3, parameters=[np.ones(2)], record=done)
    checkpoint = transport.Store(tmp_path).load()
    assert checkpoint is not None and checkpoint.log == (done,)
    assert checkpoint.next_round_id == 3 and checkpoint.strategy_state is not None
    np.testing.assert_array_equal(checkpoint.strategy_state["optimizer"]["v"], [2.0, 2.0])
    with pytest.raises(TypeError, match="JSON or arrays"):
        encode_state({"type": "X", "bad": object()})
