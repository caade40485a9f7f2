"""gRPC-only behaviour over loopback: raw protobuf abuse, >4 MiB vectors, TLS and mTLS."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import numpy as np
import pytest
import transport_testkit as kit

import secagg
import transport
from transport._generated import blindsum_pb2 as pb
from transport._grpc_server import METHOD


async def raw_call(port: int, frames: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Send raw frames on Join; return the status the coordinator ended with."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(METHOD)()
        try:
            for data in frames:
                await call.write(data)
            while await call.read() is not grpc.aio.EOF:
                pass
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        return await call.code(), await call.details()


def hello(cid: int) -> bytes:
    return pb.ClientFrame(hello=pb.Hello(client_id=cid, version=1)).SerializeToString()


async def served(frames: list[bytes]) -> tuple[grpc.StatusCode, str]:
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=secagg.PlainBackend(), config=kit.config())
    server = transport.GrpcServer(coord, "127.0.0.1:0")
    port = await server.start()
    try:
        return await asyncio.wait_for(raw_call(port, frames), 10)
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("frames", "code", "text"),
    [
        ([b"\xff\xff\xff\xff"], grpc.StatusCode.INVALID_ARGUMENT, "malformed ClientFrame"),
        ([pb.ClientFrame(frame=pb.Frame(last=True)).SerializeToString()],
         grpc.StatusCode.INVALID_ARGUMENT, "the first frame must be a Hello"),
        ([hello(4), hello(4)], grpc.StatusCode.INVALID_ARGUMENT, "client 4 sent a second Hello"),
        ([hello(4), pb.ClientFrame(frame=pb.Frame(data=b"x")).SerializeToString()],
         grpc.StatusCode.INVALID_ARGUMENT, "client 4 sent a frame without a header"),
        ([hello(4), b"\x12\x05\x0a\x03\x08"], grpc.StatusCode.INVALID_ARGUMENT,
         "client 4 sent a malformed ClientFrame"),
        ([hello(4), pb.ClientFrame(frame=pb.Frame(
            header=pb.Header(kind=pb.KIND_READY, size=2), data=b"abc", last=True)
          ).SerializeToString()],
         grpc.StatusCode.INVALID_ARGUMENT, "more than the 2 bytes its header declared"),
        ([hello(4), pb.ClientFrame(frame=pb.Frame(
            header=pb.Header(kind=pb.Kind.Value("KIND_READY"), size=5), data=b"ab", last=True)
          ).SerializeToString()],
         grpc.StatusCode.INVALID_ARGUMENT, "ended a message after 2 of 5 declared bytes"),
        ([hello(4), pb.ClientFrame(frame=pb.Frame(
            header=pb.Header(kind=99), last=True)).SerializeToString()],
         grpc.StatusCode.INVALID_ARGUMENT, "unknown kind 99"),
    ],
    ids=["garbage", "no-hello", "two-hellos", "headless", "malformed-later", "over-declared",
         "under-declared", "unknown-kind"],
)
def test_raw_protocol_abuse_gets_a_named_status(frames: list[bytes], code: grpc.StatusCode,
                                                text: str) -> None:
    got_code, details = asyncio.run(served(frames))
    assert got_code == code
    assert text in details


def test_vectors_beyond_4_mib_travel_in_chunks() -> None:
    dim = 1_500_000  # 12 MB of float64 each way, past gRPC's default 4 MiB limit
    strategy = kit.TinyAvg()
    coord = transport.Coordinator(
        strategy=strategy, parameters=[np.zeros(dim, np.float64)],
        backend=secagg.PlainBackend(), config=kit.config(clients_per_round=2))
    summary, clients, _ = asyncio.run(kit.run_federation(
        kit.GrpcHarness(), coord, {c: kit.runtime(c) for c in (1, 2)}))
    assert summary.rounds_completed == 1
    np.testing.assert_allclose(coord.parameters[0], kit.expected_mean([1, 2]))


def test_plaintext_beyond_loopback_is_refused() -> None:
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=secagg.PlainBackend(), config=kit.config())
    with pytest.raises(transport.ConfigError, match="needs TLS"):
        transport.GrpcServer(coord, "0.0.0.0:7000")
    transport.GrpcServer(coord, "0.0.0.0:7000", allow_insecure=True)  # an explicit choice
    assert transport.is_loopback("127.0.0.1:1") and transport.is_loopback("[::1]:1")
    assert transport.is_loopback("localhost:5") and not transport.is_loopback("10.0.0.1:5")


@pytest.fixture(scope="module")
def pki() -> kit.Pki:
    return kit.make_pki()


def tls_harness(pki: kit.Pki, *, mutual: bool, client_cert: bool,
                trust: bool = True) -> kit.GrpcHarness:
    h = kit.GrpcHarness()
    h.server_tls = transport.ServerTLS(private_key=pki.server_key,
                                       certificate_chain=pki.server_cert,
                                       client_ca=pki.ca if mutual else None)
    h.client_tls = transport.ClientTLS(
        root_ca=pki.ca if trust else pki.client_cert,
        private_key=pki.client_key if client_cert else None,
        certificate_chain=pki.client_cert if client_cert else None)
    return h


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_round(pki: kit.Pki, mutual: bool) -> None:
    coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                  backend=secagg.PlainBackend(),
                                  config=kit.config(clients_per_round=2))
    harness = tls_harness(pki, mutual=mutual, client_cert=mutual)
    summary, _, _ = asyncio.run(kit.run_federation(
        harness, coord, {c: kit.runtime(c) for c in (0, 1)}))
    assert summary.rounds_completed == 1


@pytest.mark.parametrize(("mutual", "client_cert", "trust"),
                         [(True, False, True), (False, False, False)],
                         ids=["mtls-without-client-cert", "untrusted-server"])
def test_tls_handshake_failures_refuse_the_client(pki: kit.Pki, mutual: bool,
                                                  client_cert: bool, trust: bool) -> None:
    async def attempt() -> transport.ConnectionLost:
        coord = transport.Coordinator(strategy=kit.TinyAvg(),
                                      parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        harness = tls_harness(pki, mutual=mutual, client_cert=client_cert, trust=trust)
        await harness.start(coord)
        try:
            with pytest.raises(transport.ConnectionLost) as info:
                await harness.connector(0)()
            return info.value
        finally:
            await harness.stop()

    err = asyncio.run(attempt())
    assert err.code is transport.Code.UNAVAILABLE


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_hand_serialised_frames_parse_as_protobuf(size: int) -> None:
    from transport._frames import Reassembler, serialize_frames, split_frame, to_frames
    from transport._messages import SERVER_KINDS

    msg = transport.Message(kind=transport.Kind.FIT, round_id=7, payload=b"\x07" * size,
                            config={"a": 1, "b": "s", "c": 1.5, "d": True}, detail="d",
                            stage="st")
    raw = serialize_frames(msg)
    assert len(raw) == max(1, -(-size // (1 << 20)))
    for build in (raw, [pb.ServerFrame(frame=f).SerializeToString() for f in to_frames(msg)]):
        for fast in (False, True):
            assembler = Reassembler(who="x", allowed=SERVER_KINDS, max_bytes=1 << 30)
            views = [split_frame(b) if fast else pb.ServerFrame.FromString(b).frame
                     for b in build]
            assert all(v is not None for v in views)
            got = [assembler.feed(v) for v in views]  # type: ignore[arg-type]
            assert got[-1] == msg and all(g is None for g in got[:-1])


@pytest.mark.parametrize("raw", [
    b"", b"\x12", b"\x12\x05\x12\x01x", b"\x12\x03\x18\x02\x00", b"\x12\x04\x18\x01\x18\x01",
    b"\x12\x02\x20\x01", b"\x0a\x00", b"\x12\x03\x12\x05x", b"\x12\x02\x18\x02",
], ids=["empty", "no-length", "short", "trailing", "repeated", "unknown-field", "hello",
        "overlong-data", "last-2"])
def test_fast_frame_reader_leaves_odd_encodings_to_protobuf(raw: bytes) -> None:
    from transport._frames import split_frame

    assert split_frame(raw) is None


def test_generated_stub_speaks_to_the_server() -> None:
    from transport._generated import blindsum_pb2_grpc as pb_grpc

    async def hello() -> pb.ServerFrame:
        coord = transport.Coordinator(strategy=kit.TinyAvg(),
                                      parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        server = transport.GrpcServer(coord, "127.0.0.1:0")
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = pb_grpc.CoordinatorStub(channel).Join()
                await call.write(pb.ClientFrame(hello=pb.Hello(client_id=5, version=1)))
                first = await call.read()
                call.cancel()
                return first
        finally:
            await server.stop(0)

    first = asyncio.run(hello())
    assert first.welcome.client_id == 5 and first.welcome.backend == "plain"


def test_client_runtime_stops_at_an_unregistered_id_and_says_why_it_gives_up() -> None:
    """An id the token table does not know is refused with NOT_FOUND; the runtime stops
    there (retrying cannot help) instead of retrying until ``give_up_after`` and then
    reporting only that it gave up. A runtime that does give up names the last failure."""

    async def unregistered() -> tuple[transport.ConnectionLost, float]:
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        coord.tokens = transport.TokenTable({0: "a" * 20})
        harness = kit.GrpcHarness()
        await harness.start(coord)
        try:
            rt = transport.ClientRuntime(
                client_id=9, fit=kit.shift_fit(9, 0.0), connector=harness.connector(9, "z" * 20),
                backoff=transport.Backoff(initial=0.05, maximum=0.1, give_up_after=5))
            start = asyncio.get_running_loop().time()
            with pytest.raises(transport.ConnectionLost) as info:
                await rt.run()
            return info.value, asyncio.get_running_loop().time() - start
        finally:
            await harness.stop()

    err, seconds = asyncio.run(unregistered())
    assert err.code is transport.Code.NOT_FOUND and "client id 9 is not registered" in err.message
    assert seconds < 2

    async def nobody_listening() -> transport.ConnectionLost:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rt = transport.ClientRuntime(
            client_id=1, fit=kit.shift_fit(1, 0.0),
            connector=transport.GrpcConnector(f"127.0.0.1:{port}", client_id=1,
                                              connect_timeout=0.2),
            backoff=transport.Backoff(initial=0.05, maximum=0.1, give_up_after=0.3))
        with pytest.raises(transport.ConnectionLost) as info:
            await rt.run()
        return info.value

    gave_up = asyncio.run(nobody_listening())
    assert "gave up after 0.3 s (last: UNAVAILABLE" in gave_up.message


def test_listening_log_names_the_bound_port(caplog: pytest.LogCaptureFixture) -> None:
    async def start() -> int:
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        server = transport.GrpcServer(coord, "127.0.0.1:0")
        try:
            return await server.start()
        finally:
            await server.stop(0)

    with caplog.at_level("INFO", logger="blindsum.coordinator"):
        port = asyncio.run(start())
    assert port > 0
    assert f"coordinator listening on 127.0.0.1:{port} (plaintext)" in caplog.text


def test_a_tls_key_that_does_not_fit_the_certificate_is_named(pki: kit.Pki) -> None:
    """gRPC itself says only 'Failed to bind to address', as if the port were taken."""

    async def start(tls: transport.ServerTLS) -> None:
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        server = transport.GrpcServer(coord, "127.0.0.1:0", tls=tls)
        try:
            await server.start()
        finally:
            await server.stop(0)

    wrong_key = transport.ServerTLS(private_key=pki.client_key, certificate_chain=pki.server_cert)
    with pytest.raises(transport.ConfigError, match="does not belong to the first certificate"):
        asyncio.run(start(wrong_key))
    not_a_key = transport.ServerTLS(private_key=pki.server_cert, certificate_chain=pki.server_cert)
    with pytest.raises(transport.ConfigError, match="not an unencrypted PEM private key"):
        asyncio.run(start(not_a_key))
    assert transport.ServerTLS(private_key=pki.server_key,
                               certificate_chain=pki.server_cert).problem() is None


def test_a_stream_cancelled_by_the_server_stopping_logs_no_error(
        caplog: pytest.LogCaptureFixture) -> None:
    # grpc.aio logs "Exception not handled by _handle_exceptions" with a CancelledError
    # traceback for every Join stream still open when the server stops (the end of every
    # run with connected clients): noise in `make demo`'s output, filtered out.
    async def run() -> None:
        coord = transport.Coordinator(strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
                                      backend=secagg.PlainBackend(), config=kit.config())
        server = transport.GrpcServer(coord, "127.0.0.1:0")
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(METHOD)()
                await call.write(hello(3))
                await call.read()  # Welcome: the stream is open and idle
                await server.stop(0)
        finally:
            await server.stop(0)

    with caplog.at_level("ERROR"):
        for _ in range(5):  # grpc.aio logs it mostly from the second event loop of a process
            asyncio.run(run())
    assert not [r for r in caplog.records if r.name.startswith("grpc")], caplog.text
