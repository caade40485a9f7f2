"""One contract for every transport: the in-process one and gRPC over loopback.

Each test runs a real federation (coordinator + client runtimes) and, where the
test is about bad input, one hand-driven client link that breaks a rule.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import transport_testkit as kit

import secagg
import transport
from secagg._plain import PlainUpdate
from transport import Code, ConnectionLost, Kind, Message


async def expect_lost(link: transport.ClientLink) -> ConnectionLost:
    """Read until the coordinator ends the link; return the status."""
    with pytest.raises(ConnectionLost) as info:
        while True:
            await asyncio.wait_for(link.recv(), 10)
    return info.value


async def recv_kind(link: transport.ClientLink, kind: Kind) -> Message:
    while True:
        msg = await asyncio.wait_for(link.recv(), 10)
        if msg.kind is kind:
            return msg


def make_coordinator(strategy: kit.TinyAvg | None = None, **kw: object) -> transport.Coordinator:
    return transport.Coordinator(strategy=strategy or kit.TinyAvg(),
                                 parameters=kit.initial_parameters(),
                                 backend=secagg.PlainBackend(), config=kit.config(**kw))


class TransportContract:
    harness: type[kit.InProcHarness] | type[kit.GrpcHarness]

    def run(self, coordinator: transport.Coordinator, runtimes: dict, extra=None):  # type: ignore[no-untyped-def]
        return asyncio.run(kit.run_federation(self.harness(), coordinator, runtimes, extra))

    def test_rounds_average_the_weighted_updates(self) -> None:
        strategy = kit.TinyAvg()
        coord = make_coordinator(strategy, rounds=2, clients_per_round=4)
        summary, clients, _ = self.run(coord, {c: kit.runtime(c) for c in range(4)})
        assert summary.rounds_completed == 2 and summary.backend == "plain"
        want = 2 * kit.expected_mean([0, 1, 2, 3])
        for arr in coord.parameters:
            np.testing.assert_allclose(arr, want, rtol=1e-6)
        assert all(s.finished and s.rounds_fitted == 2 for s in clients.values())
        assert [a.contributors for a in strategy.aggregates] == [(0, 1, 2, 3)] * 2

    def test_clients_apply_the_update_transforms_the_config_names(self) -> None:
        secagg.register_update_transform("test.double", _double)

        class Doubling(kit.TinyAvg):
            def configure_fit(self, server_round, parameters):  # type: ignore[no-untyped-def]
                return {"blindsum.transforms": "test.double"}

        coord = make_coordinator(Doubling(), clients_per_round=3)
        self.run(coord, {c: kit.runtime(c) for c in range(3)})
        np.testing.assert_allclose(coord.parameters[0], 2 * kit.expected_mean([0, 1, 2]))

    def test_over_selection_releases_the_slowest(self) -> None:
        coord = make_coordinator(clients_per_round=3, over_selection=1 / 3)
        runtimes = {c: kit.runtime(c, delay=1.0 if c == 3 else 0.0) for c in range(4)}
        summary, _, _ = self.run(coord, runtimes)
        rec = summary.log[-1]
        assert rec.sampled == (0, 1, 2, 3)
        assert rec.selected == (0, 1, 2) and rec.released == (3,)
        assert rec.contributors == (0, 1, 2) and rec.all_dropped == ()

    def test_fit_straggler_is_dropped_with_deadline_status(self) -> None:
        coord = make_coordinator(clients_per_round=4, fit_deadline=0.6)
        runtimes = {c: kit.runtime(c, delay=1.2 if c == 2 else 0.0) for c in range(4)}
        summary, clients, _ = self.run(coord, runtimes)
        rec = summary.log[-1]
        assert rec.completed and rec.dropped == {"fit": (2,)}
        assert rec.contributors == (0, 1, 3)
        assert "DEADLINE_EXCEEDED" in clients[2].last_status
        assert "client 2 missed" in clients[2].last_status

    def test_protocol_straggler_is_dropped_and_round_goes_on(self) -> None:
        coord = make_coordinator(clients_per_round=3, stage_deadline=0.5)
        runtimes = {c: kit.runtime(c) for c in (0, 1)}
        runtimes[2] = kit.runtime(2, backend=kit.SlowPlain(delay=1.5))
        summary, clients, _ = self.run(coord, runtimes)
        rec = summary.log[-1]
        assert rec.completed and rec.dropped == {"collect": (2,)}
        assert rec.contributors == (0, 1)
        assert "stage 'collect'" in clients[2].last_status

    def test_unknown_and_wrong_tokens_are_refused(self) -> None:
        tokens = {0: "a" * 20, 1: "b" * 20, 7: "c" * 20}

        async def intruders() -> list[ConnectionLost]:
            out = []
            for cid, token in ((7, "x" * 20), (9, "z" * 20), (7, None)):
                with pytest.raises(ConnectionLost) as info:
                    await harness.connector(cid, token)()
                out.append(info.value)
            return out

        coord = make_coordinator(clients_per_round=2)
        coord.tokens = transport.TokenTable(tokens)
        harness = self.harness()
        runtimes = {c: kit.runtime(c) for c in (0, 1)}
        summary, _, errors = asyncio.run(
            kit.run_federation(harness, coord, runtimes, intruders, tokens=tokens))
        assert summary.rounds_completed == 1
        assert [e.code for e in errors] == [Code.UNAUTHENTICATED, Code.NOT_FOUND,
                                            Code.UNAUTHENTICATED]
        assert "client 7 sent a wrong token" in errors[0].message
        assert "client id 9 is not registered" in errors[1].message

    def test_client_id_out_of_range_is_refused(self) -> None:
        async def attempt() -> ConnectionLost:
            harness = self.harness()
            await harness.start(make_coordinator())
            try:
                with pytest.raises(ConnectionLost) as info:
                    await harness.connector(2**31 - 2)()  # share point 2^31 - 1 is 0 in GF(2^31 - 1)
                return info.value
            finally:
                await harness.stop()

        err = asyncio.run(attempt())
        assert err.code is Code.INVALID_ARGUMENT and "client id 2147483646" in err.message

    def test_client_refuses_a_backend_it_does_not_accept(self) -> None:
        coord = make_coordinator(clients_per_round=2)
        runtimes = {0: kit.runtime(0), 1: kit.runtime(1),
                    2: kit.runtime(2, accept_backends=("secagg+",))}
        summary, clients, _ = self.run(coord, runtimes)
        assert summary.rounds_completed == 1 and 2 not in summary.log[-1].sampled
        assert isinstance(clients[2], ConnectionLost)
        assert clients[2].code is Code.PERMISSION_DENIED and "'plain'" in clients[2].message

    def test_backend_that_cannot_work_stops_after_max_failed_rounds(self) -> None:
        backend = secagg.SecAggPlusBackend(threshold=5)  # 2 clients have 1 neighbour
        coord = transport.Coordinator(
            strategy=kit.TinyAvg(), parameters=kit.initial_parameters(), backend=backend,
            config=kit.config(clients_per_round=2, max_failed_rounds=2))
        with pytest.raises(transport.RoundsFailed, match="threshold 5 exceeds"):
            self.run(coord, {c: kit.runtime(c) for c in (0, 1)})
        assert [r.status for r in coord.log] == ["failed", "failed"]

    def test_requests_sent_in_batches_within_one_stage(self) -> None:
        strategy = kit.TinyAvg()
        coord = transport.Coordinator(strategy=strategy, parameters=kit.initial_parameters(),
                                      backend=kit.TwoBatchPlain(),
                                      config=kit.config(clients_per_round=4))
        stages: list[tuple[str, tuple[int, ...]]] = []
        summary, _, _ = asyncio.run(kit.run_federation(
            self.harness(), coord, {c: kit.runtime(c) for c in range(4)},
            on_event=lambda e, _t: stages.append((e.stage, e.clients))
            if e.kind == "stage_started" else None))
        assert stages == [("fit", (0, 1, 2, 3)), ("collect", (0, 1))]
        assert summary.log[-1].contributors == (0, 1, 2, 3)
        np.testing.assert_allclose(coord.parameters[1], kit.expected_mean([0, 1, 2, 3]))

    def test_a_stalling_backend_fails_the_round(self) -> None:
        class Stalling:
            name = "plain"

            def server_session(self, *, client_ids, dim, **_):  # type: ignore[no-untyped-def]
                return kit.StallingSession(client_ids, dim)

        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=Stalling(),  # type: ignore[arg-type]
                                      config=kit.config(clients_per_round=2, max_failed_rounds=1))
        with pytest.raises(transport.RoundsFailed, match="stalled in stage 'stuck'"):
            self.run(coord, {c: kit.runtime(c) for c in (0, 1)})

    def test_second_connection_of_a_client_is_refused(self) -> None:
        async def twin() -> ConnectionLost:
            await asyncio.sleep(0.2)
            with pytest.raises(ConnectionLost) as info:
                await harness.connector(1)()
            return info.value

        harness = self.harness()
        coord = make_coordinator(clients_per_round=3)
        summary, _, err = asyncio.run(kit.run_federation(
            harness, coord, {c: kit.runtime(c, delay=0.5) for c in range(3)}, twin))
        assert err.code is Code.ALREADY_EXISTS and "client 1 is already connected" in err.message
        assert summary.log[-1].contributors == (0, 1, 2)

    def _bad_client(self, behave):  # type: ignore[no-untyped-def]
        """Clients 0-2 honest, client 3 driven by ``behave(link)``; returns its status."""
        harness = self.harness()

        async def bad() -> ConnectionLost:
            link = await harness.connector(3)()
            return await behave(link)

        coord = make_coordinator(clients_per_round=4, min_clients=2)
        summary, clients, err = asyncio.run(
            kit.run_federation(harness, coord, {c: kit.runtime(c) for c in range(3)}, bad))
        rec = summary.log[-1]
        assert rec.completed and rec.contributors == (0, 1, 2)
        assert 3 in rec.all_dropped
        return err, rec

    def test_out_of_order_protocol_message_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.PROTOCOL, round_id=fit.round_id, payload=b"x"))
            return await expect_lost(link)

        err, rec = self._bad_client(behave)
        assert err.code is Code.FAILED_PRECONDITION
        assert "client 3 sent PROTOCOL in stage 'fit'" in err.message
        assert "without a pending request" in err.message
        assert rec.dropped["fit"] == (3,)

    def test_duplicate_ready_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            return await expect_lost(link)

        err, _ = self._bad_client(behave)
        assert err.code is Code.FAILED_PRECONDITION
        assert "client 3 sent READY out of order" in err.message

    def test_wrong_shape_update_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            await recv_kind(link, Kind.PROTOCOL)
            update = PlainUpdate(round_id=fit.round_id, vector=np.ones(5), weight=1.0)
            await link.send(Message(kind=Kind.PROTOCOL, round_id=fit.round_id,
                                    payload=secagg.encode(update)))
            return await expect_lost(link)

        err, rec = self._bad_client(behave)
        assert err.code is Code.INVALID_ARGUMENT
        assert "client 3" in err.message and "length 9, got 5" in err.message
        assert rec.dropped == {"collect": (3,)}

    def test_undecodable_protocol_payload_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            await recv_kind(link, Kind.PROTOCOL)
            await link.send(Message(kind=Kind.PROTOCOL, round_id=fit.round_id, payload=b"BS\x01"))
            return await expect_lost(link)

        err, _ = self._bad_client(behave)
        assert err.code is Code.INVALID_ARGUMENT and "bad magic" in err.message

    def test_message_for_a_future_round_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id + 5))
            return await expect_lost(link)

        err, _ = self._bad_client(behave)
        assert err.code is Code.FAILED_PRECONDITION
        assert "client 3 sent READY for round" in err.message and "is running" in err.message

    def test_server_only_kind_from_a_client_is_refused(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.FIT, round_id=fit.round_id))
            return await expect_lost(link)

        err, _ = self._bad_client(behave)
        assert err.code is Code.INVALID_ARGUMENT and "may not send FIT" in err.message

    def test_client_vanishing_mid_stage_is_dropped(self) -> None:
        async def behave(link: transport.ClientLink) -> ConnectionLost:
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            await recv_kind(link, Kind.PROTOCOL)
            await link.close()
            return ConnectionLost(Code.CANCELLED, "closed by the test")

        _, rec = self._bad_client(behave)
        assert rec.dropped == {"collect": (3,)}

    def test_oversize_message_is_refused(self) -> None:
        harness = self.harness()

        async def bad() -> ConnectionLost:
            link = await harness.connector(3)()
            fit = await recv_kind(link, Kind.FIT)
            await link.send(Message(kind=Kind.READY, round_id=fit.round_id))
            await recv_kind(link, Kind.PROTOCOL)
            await link.send(Message(kind=Kind.PROTOCOL, round_id=fit.round_id,
                                    payload=b"\0" * 4096))
            return await expect_lost(link)

        coord = make_coordinator(clients_per_round=4, max_message_bytes=2048)
        summary, _, err = asyncio.run(
            kit.run_federation(harness, coord, {c: kit.runtime(c) for c in range(3)}, bad))
        assert err.code is Code.RESOURCE_EXHAUSTED
        assert "client 3 announced a 4096-byte PROTOCOL message" in err.message
        assert summary.log[-1].contributors == (0, 1, 2)


    @pytest.mark.parametrize("stage", ["share_keys", "masked_input", "unmask"])
    def test_secagg_plus_round_survives_a_client_vanishing(self, stage: str) -> None:
        backend = secagg.SecAggPlusBackend(clip=10.0, max_weight=10)
        strategy = kit.TinyAvg()
        coord = transport.Coordinator(strategy=strategy, parameters=kit.initial_parameters(),
                                      backend=backend, config=kit.config(clients_per_round=5))
        stages: list[str] = []

        def on_event(event: transport.RoundEvent, tasks: dict) -> None:  # type: ignore[type-arg]
            if event.kind == "stage_started":
                stages.append(event.stage)
                if event.stage == stage:
                    tasks[4].cancel()

        summary, clients, _ = asyncio.run(kit.run_federation(
            self.harness(), coord, {c: kit.runtime(c) for c in range(5)}, on_event=on_event))
        rec = summary.log[-1]
        assert stages == ["fit", "advertise_keys", "share_keys", "masked_input", "unmask"]
        assert rec.completed and rec.dropped == {stage: (4,)}
        survivors = [0, 1, 2, 3] if stage != "unmask" else [0, 1, 2, 3, 4]
        assert rec.contributors == tuple(survivors)
        for arr in coord.parameters:
            np.testing.assert_allclose(arr, kit.expected_mean(survivors), atol=1e-3)


    @pytest.mark.parametrize("impostor", [False, True], ids=["honest", "impostor"])
    def test_authenticated_secagg_plus_round(self, impostor: bool) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        keys = {c: Ed25519PrivateKey.generate() for c in range(5)}
        raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        identities = {c: k.public_key().public_bytes(*raw) for c, k in keys.items()}
        backend = secagg.SecAggPlusBackend(clip=10.0, max_weight=10, identities=identities,
                                           dropout=0.3)
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=backend, config=kit.config(clients_per_round=5))
        signing = dict(keys)
        if impostor:
            signing[2] = Ed25519PrivateKey.generate()  # not the key the others know
        runtimes = {c: kit.runtime(c, backend=backend, session_options={"identity": signing[c]})
                    for c in range(5)}
        summary, _, _ = self.run(coord, runtimes)
        rec = summary.log[-1]
        survivors = (0, 1, 3, 4) if impostor else (0, 1, 2, 3, 4)
        assert rec.completed and rec.contributors == survivors
        if impostor:
            assert rec.dropped == {"advertise_keys": (2,)}
        for arr in coord.parameters:
            np.testing.assert_allclose(arr, kit.expected_mean(list(survivors)), atol=1e-3)

    def test_ckks_round_survives_a_key_holder_vanishing(self) -> None:
        pytest.importorskip("tenseal")
        backend = secagg.CKKSBackend.generate(key_holders=(3, 1))
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=backend, config=kit.config(clients_per_round=4))
        stages: list[tuple[str, tuple[int, ...]]] = []

        def on_event(event: transport.RoundEvent, tasks: dict) -> None:  # type: ignore[type-arg]
            if event.kind == "stage_started":
                stages.append((event.stage, event.clients))
                if event.stage == "decrypt":
                    tasks[3].cancel()  # the first key holder vanishes before decrypting

        summary, _, _ = asyncio.run(kit.run_federation(
            self.harness(), coord, {c: kit.runtime(c, backend=backend) for c in range(4)},
            on_event=on_event))
        rec = summary.log[-1]
        assert stages == [("fit", (0, 1, 2, 3)), ("encrypted_input", (0, 1, 2, 3)),
                          ("decrypt", (3,))]  # key holder 1 is asked within the same stage
        assert rec.completed and rec.dropped == {"decrypt": (3,)}
        assert rec.contributors == (0, 1, 2, 3)
        for arr in coord.parameters:
            np.testing.assert_allclose(arr, kit.expected_mean([0, 1, 2, 3]), atol=1e-4)


    def test_ckks_next_key_holder_gets_a_fresh_deadline(self) -> None:
        pytest.importorskip("tenseal")
        backend = secagg.CKKSBackend.generate(key_holders=(3, 1))
        slow = kit.SlowOnce(backend, cid=3, nth=2, delay=1.2)  # 3 dawdles over decrypting
        coord = transport.Coordinator(
            strategy=kit.TinyAvg(), parameters=kit.initial_parameters(), backend=backend,
            config=kit.config(clients_per_round=4, stage_deadline=0.6))
        runtimes = {c: kit.runtime(c, backend=slow if c == 3 else backend) for c in range(4)}
        summary, clients, _ = self.run(coord, runtimes)
        rec = summary.log[-1]
        assert rec.completed and rec.dropped == {"decrypt": (3,)}
        assert "deadline of stage 'decrypt'" in clients[3].last_status
        assert rec.contributors == (0, 1, 2, 3)


def _double(update: np.ndarray, config: object, rng: np.random.Generator) -> np.ndarray:
    return 2 * update


class TestInProcess(TransportContract):
    harness = kit.InProcHarness


class TestGrpc(TransportContract):
    harness = kit.GrpcHarness
