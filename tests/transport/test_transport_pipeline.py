"""With no over-selection, each client gets its first-stage request as soon as it is
READY (the fit phase and the backend's first stage overlap); a client lost in fit is
a dropout of that stage. Over the in-process transport."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import transport_testkit as kit

import secagg
import transport
from secagg import Parameters
from transport import Kind, Message

Log = list[tuple[int, str, Kind]]


class RecordingLink:
    """A client link that notes each message it carries, in event-loop order."""

    def __init__(self, cid: int, inner: transport.ClientLink, log: Log) -> None:
        self._cid, self._inner, self._log = cid, inner, log
        self.backend = inner.backend

    async def send(self, message: Message) -> None:
        self._log.append((self._cid, "sent", message.kind))
        await self._inner.send(message)

    async def recv(self) -> Message:
        message = await self._inner.recv()
        self._log.append((self._cid, "received", message.kind))
        return message

    async def close(self) -> None:
        await self._inner.close()


class RecordingHarness(kit.InProcHarness):
    def __init__(self) -> None:
        self.log: Log = []

    def connector(self, cid: int, token: str | None = None) -> transport.Connector:
        inner = super().connector(cid, token)

        async def connect() -> transport.ClientLink:
            return RecordingLink(cid, await inner(), self.log)

        return connect


def failing_fit(delay: float) -> transport.FitFn:
    def fit(params: Parameters, config: object) -> tuple[Parameters, int, dict]:
        import time
        time.sleep(delay)
        raise RuntimeError("no data today")

    return fit


def failing_runtime(cid: int, delay: float = 0.0, **kw: object):  # type: ignore[no-untyped-def]
    def make(conn: transport.Connector) -> transport.ClientRuntime:
        return transport.ClientRuntime(client_id=cid, fit=failing_fit(delay), connector=conn,
                                       backoff=kit.FAST, seed=cid, **kw)  # type: ignore[arg-type]
    return make


def backend_named(name: str) -> secagg.Backend:
    if name == "plain":
        return secagg.PlainBackend()
    return secagg.SecAggPlusBackend(clip=10.0, max_weight=10)


FIRST_STAGE = {"plain": "collect", "secagg+": "advertise_keys"}


@pytest.mark.parametrize("name", ["plain", "secagg+"])
def test_fast_client_gets_its_first_request_before_a_slow_one_is_ready(name: str) -> None:
    backend = backend_named(name)
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=backend, config=kit.config(clients_per_round=4))
    harness = RecordingHarness()
    stages: list[tuple[str, int, tuple[int, ...]]] = []
    runtimes = {c: kit.runtime(c, delay=0.5 if c == 3 else 0.0, backend=backend)
                for c in range(4)}
    summary, _, _ = asyncio.run(kit.run_federation(
        harness, coord, runtimes,
        on_event=lambda e, _t: stages.append((e.stage, e.index, e.clients))
        if e.kind == "stage_started" else None))
    log = harness.log
    slow_ready = log.index((3, "sent", Kind.READY))
    for fast in (0, 1, 2):
        assert log.index((fast, "received", Kind.PROTOCOL)) < slow_ready
    assert log.index((0, "sent", Kind.PROTOCOL)) < slow_ready  # answered while 3 fits
    first = FIRST_STAGE[name]
    assert stages[:2] == [("fit", 0, (0, 1, 2, 3)), (first, 1, (0, 1, 2, 3))]
    rec = summary.log[-1]
    assert rec.completed and rec.selected == (0, 1, 2, 3) and rec.dropped == {}
    assert rec.contributors == (0, 1, 2, 3)
    assert {"fit", first} <= set(rec.stage_seconds) and {"fit", first} <= set(rec.latency)
    for arr in coord.parameters:
        np.testing.assert_allclose(arr, kit.expected_mean([0, 1, 2, 3]), atol=1e-3)


@pytest.mark.parametrize("name", ["plain", "secagg+"])
def test_client_failing_fit_is_a_dropout_and_the_round_completes(name: str) -> None:
    backend = backend_named(name)
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=backend, config=kit.config(clients_per_round=5))
    harness = RecordingHarness()
    runtimes = {c: kit.runtime(c, backend=backend) for c in range(4)}
    runtimes[4] = failing_runtime(4, delay=0.4, backend=backend)  # fails once others asked
    summary, _, _ = asyncio.run(kit.run_federation(harness, coord, runtimes))
    log = harness.log
    assert log.index((0, "received", Kind.PROTOCOL)) < log.index((4, "sent", Kind.ABORT))
    rec = summary.log[-1]
    assert rec.completed and rec.dropped == {"fit": (4,)}
    assert rec.selected == (0, 1, 2, 3) and rec.contributors == (0, 1, 2, 3)
    for arr in coord.parameters:
        np.testing.assert_allclose(arr, kit.expected_mean([0, 1, 2, 3]), atol=1e-3)


def test_client_lost_after_ready_is_a_dropout_of_the_first_stage() -> None:
    harness = RecordingHarness()

    async def vanish() -> None:
        link = await harness.connector(3)()
        fit = await asyncio.wait_for(link.recv(), 10)
        assert fit.kind is Kind.FIT
        await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
        request = await asyncio.wait_for(link.recv(), 10)
        assert request.kind is Kind.PROTOCOL and request.stage == "collect"
        await link.close()

    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=secagg.PlainBackend(),
                                  config=kit.config(clients_per_round=4))
    runtimes = {c: kit.runtime(c, delay=0.3) for c in range(3)}
    summary, _, _ = asyncio.run(kit.run_federation(harness, coord, runtimes, vanish))
    rec = summary.log[-1]
    assert rec.completed and rec.selected == (0, 1, 2, 3) and rec.dropped == {"collect": (3,)}
    assert rec.contributors == (0, 1, 2)
    np.testing.assert_allclose(coord.parameters[1], kit.expected_mean([0, 1, 2]))


def test_too_few_ready_fails_the_round() -> None:
    coord = transport.Coordinator(
        strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
        backend=secagg.PlainBackend(),
        config=kit.config(clients_per_round=3, min_clients=2, max_failed_rounds=1))
    runtimes = {0: kit.runtime(0), 1: failing_runtime(1, 0.2), 2: failing_runtime(2, 0.2)}
    with pytest.raises(transport.RoundsFailed,
                       match="only 1 clients were ready to fit, at least 2 needed"):
        asyncio.run(kit.run_federation(kit.InProcHarness(), coord, runtimes))
    rec = coord.log[-1]
    assert rec.status == "failed" and rec.dropped == {"fit": (1, 2)} and rec.selected == ()
    assert np.all(coord.parameters[1] == 0)
