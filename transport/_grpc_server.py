"""The coordinator's gRPC server (``blindsum.v1.Coordinator/Join`` over grpc.aio).

The method is registered with raw-bytes (de)serialisers so that a malformed
protobuf is answered with INVALID_ARGUMENT naming the problem, and so that the
frames of a broadcast (the global parameters) are serialised once, not per client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from transport._coordinator import Coordinator
from transport._errors import Code, ConfigError, Rejected
from transport._frames import GRPC_MESSAGE_LIMIT, Reassembler, serialize_frames, split_frame
from transport._generated import blindsum_pb2 as pb
from transport._messages import CLIENT_KINDS, PROTOCOL_VERSION, Kind, Message

__all__ = ["GrpcServer", "ServerTLS", "is_loopback", "SERVICE", "METHOD"]

log = logging.getLogger("blindsum.coordinator")
SERVICE = "blindsum.v1.Coordinator"
METHOD = f"/{SERVICE}/Join"  # the path the generated CoordinatorStub uses
HELLO_TIMEOUT = 10.0
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.max_send_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.so_reuseport", 0),
]


class _PeerCancellationFilter(logging.Filter):
    """Drops grpc.aio's ERROR record for a Join stream that was cancelled.

    When a client goes away mid-stream (killed, or closing its channel as the run ends)
    or the server stops with streams open, grpc.aio cancels the handler's task and then
    logs "Exception not handled by _handle_exceptions in servicer method" with the
    CancelledError's traceback: noise, not an error of ours (the stream's end is already
    recorded by ``Coordinator.detach``). Any other exception is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, asyncio.CancelledError)
                    and "_handle_exceptions" in str(record.msg))


_CANCELLATION_FILTER = _PeerCancellationFilter()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLS:
    """PEM bytes: the server's key and certificate chain; ``client_ca`` turns on mTLS."""

    private_key: bytes
    certificate_chain: bytes
    client_ca: bytes | None = None

    def problem(self) -> str | None:
        """What is wrong with the key and certificate, if anything (gRPC only says that
        it failed to bind the address)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(self.private_key, password=None)
        except (ValueError, TypeError) as exc:
            return f"the TLS private key is not an unencrypted PEM private key ({exc})"
        try:
            cert = x509.load_pem_x509_certificate(self.certificate_chain)
        except ValueError as exc:
            return f"the TLS certificate chain is not a PEM certificate ({exc})"
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(der, fmt) != cert.public_key().public_bytes(der, fmt):
            return "the TLS private key does not belong to the first certificate of the chain"
        return None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def is_loopback(address: str) -> bool:
    """True when ``host:port`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class _Close:
    code: Code
    message: str


class _GrpcPeer:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message | _Close] = asyncio.Queue()
        self.closed = False

    def send(self, message: Message) -> None:
        if not self.closed:
            self.queue.put_nowait(message)

    def close(self, code: Code, message: str) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(_Close(code, message))


class _FrameCache:
    """Serialised frames of the last few messages (a broadcast is cut once)."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: list[tuple[Message, list[bytes]]] = []

    def frames(self, message: Message) -> list[bytes]:
        for msg, frames in self._items:
            if msg is message:
                return frames
        out = serialize_frames(message)
        if message.kind in (Kind.FIT, Kind.EVALUATE):
            self._items = [*self._items[-(self._size - 1):], (message, out)]
        return out


class GrpcServer:
    """Serves one :class:`Coordinator` on ``address``.

    TLS is required when the address is not loopback, unless ``allow_insecure``.
    """

    def __init__(self, coordinator: Coordinator, address: str, *, tls: ServerTLS | None = None,
                 allow_insecure: bool = False) -> None:
        if tls is None and not is_loopback(address) and not allow_insecure:
            raise ConfigError(f"listening on {address} (beyond loopback) needs TLS: pass a "
                              "certificate and key (--tls-cert, --tls-key), or allow_insecure "
                              "explicitly (--allow-insecure)")
        self.coordinator = coordinator
        self.address = address
        self._tls = tls
        self._cache = _FrameCache()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        logging.getLogger("grpc._cython.cygrpc").addFilter(_CANCELLATION_FILTER)  # idempotent
        server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=None)
        handler = grpc.stream_stream_rpc_method_handler(self._join)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Join": handler}),))
        if self._tls is None:
            self.port = server.add_insecure_port(self.address)
        else:
            try:
                self.port = server.add_secure_port(self.address, self._tls.credentials())
            except RuntimeError:
                problem = self._tls.problem()
                if problem is not None:
                    raise ConfigError(f"cannot listen on {self.address} with TLS: "
                                      f"{problem}") from None
                raise
        if self.port == 0:
            raise ConfigError(f"cannot listen on {self.address}")
        await server.start()
        self._server = server
        host = self.address.rpartition(":")[0]  # the bound port, also when asked for port 0
        log.info("coordinator listening on %s:%d (%s)", host, self.port,
                 "TLS" if self._tls else "plaintext")
        return self.port

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _join(self, _requests: AsyncIterator[bytes], context: Any) -> None:
        who = f"peer {context.peer()}"
        try:
            raw = await asyncio.wait_for(context.read(), HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"{who} sent no Hello within {HELLO_TIMEOUT:g} s")
        if raw is grpc.aio.EOF:
            return
        hello = _parse(raw, who)
        if isinstance(hello, Rejected) or hello.WhichOneof("body") != "hello":
            err = hello if isinstance(hello, Rejected) else Rejected(
                Code.INVALID_ARGUMENT, f"{who}: the first frame must be a Hello")
            await context.abort(_status(err.code), err.message)
        cid = int(hello.hello.client_id)
        token = _token(context)
        peer = _GrpcPeer()
        try:
            self.coordinator.admit(cid, token, peer, hello.hello.version or PROTOCOL_VERSION)
        except Rejected as exc:
            log.info("refused client %d: %s: %s", cid, exc.code.value, exc.message)
            await context.abort(_status(exc.code), exc.message)
        reader = asyncio.create_task(self._read(cid, peer, context))
        reason = "stream ended"
        try:
            await context.write(pb.ServerFrame(welcome=pb.Welcome(
                client_id=cid, backend=self.coordinator.backend.name,
                version=PROTOCOL_VERSION)).SerializeToString())
            while True:
                item = await peer.queue.get()
                if isinstance(item, _Close):
                    reason = item.message
                    if item.code is not Code.OK:
                        await context.abort(_status(item.code), item.message)
                    return
                for data in self._cache.frames(item):
                    await context.write(data)
                if item.kind is Kind.FINISHED:
                    return
        except asyncio.CancelledError:
            reason = "cancelled by the client"
            raise
        finally:
            reader.cancel()
            self.coordinator.detach(cid, peer, reason)

    async def _read(self, cid: int, peer: _GrpcPeer, context: Any) -> None:
        who = f"client {cid}"
        assembler = Reassembler(who=who, allowed=CLIENT_KINDS,
                                max_bytes=self.coordinator.config.max_message_bytes)
        try:
            while True:
                raw = await context.read()
                if raw is grpc.aio.EOF:
                    peer.close(Code.OK, "the client closed its stream")
                    return
                view = split_frame(raw)
                if view is None:  # not the plain encoding: let protobuf judge it
                    frame = _parse(raw, who)
                    if isinstance(frame, Rejected):
                        raise frame
                    if frame.WhichOneof("body") != "frame":
                        raise Rejected(Code.INVALID_ARGUMENT, f"{who} sent a second Hello")
                    message = assembler.feed(frame.frame)
                else:
                    message = assembler.feed(view)
                if message is not None:
                    self.coordinator.deliver(cid, peer, message)
        except Rejected as exc:
            self.coordinator.reject(cid, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke under us
            peer.close(Code.CANCELLED, f"read failed: {type(exc).__name__}")


def _parse(raw: bytes, who: str) -> Any:
    try:
        return pb.ClientFrame.FromString(raw)
    except DecodeError as exc:
        return Rejected(Code.INVALID_ARGUMENT, f"{who} sent a malformed ClientFrame: {exc}")


def _token(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):]
    return None


def _status(code: Code) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, code.value)
