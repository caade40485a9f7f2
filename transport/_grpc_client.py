"""The client side of the gRPC transport: a :data:`~transport.Connector` over grpc.aio."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from transport._client import ClientLink
from transport._errors import Code, ConnectionLost, Rejected
from transport._frames import GRPC_MESSAGE_LIMIT, Reassembler, iter_frames, split_frame
from transport._generated import blindsum_pb2 as pb
from transport._messages import PROTOCOL_VERSION, SERVER_KINDS, Message

__all__ = ["ClientTLS", "GrpcConnector", "CLIENT_OPTIONS"]

METHOD = "/blindsum.v1.Coordinator/Join"
CLIENT_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.max_send_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.enable_retries", 0),
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientTLS:
    """PEM bytes: the CA that signed the coordinator (``None``: system roots); a client
    key and chain for mutual TLS; ``server_name`` overrides the name checked."""

    root_ca: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_ca, self.private_key,
                                            self.certificate_chain)


class GrpcConnector:
    """Opens an authenticated ``Join`` stream each time it is called."""

    def __init__(self, address: str, *, client_id: int, token: str | None = None,
                 tls: ClientTLS | None = None, max_message_bytes: int = 1 << 31,
                 connect_timeout: float = 10.0) -> None:
        self.address = address
        self.client_id = client_id
        self._token = token
        self._tls = tls
        self._max = max_message_bytes
        self._timeout = connect_timeout

    def _channel(self) -> grpc.aio.Channel:
        if self._tls is None:
            return grpc.aio.insecure_channel(self.address, options=CLIENT_OPTIONS)
        options: list[tuple[str, int | str]] = list(CLIENT_OPTIONS)
        if self._tls.server_name:
            options.append(("grpc.ssl_target_name_override", self._tls.server_name))
        return grpc.aio.secure_channel(self.address, self._tls.credentials(), options=options)

    async def __call__(self) -> ClientLink:
        """Connect and say Hello; raises :class:`ConnectionLost` with the refusal."""
        channel = self._channel()
        metadata = (("authorization", f"Bearer {self._token}"),) if self._token else ()
        # Requests go out pre-serialised (iter_frames), answers are parsed here.
        join = channel.stream_stream(METHOD, request_serializer=None,
                                     response_deserializer=None)
        call = join(metadata=metadata)
        link = _GrpcLink(channel, call, self.client_id, self._max)
        try:
            await call.write(pb.ClientFrame(hello=pb.Hello(
                client_id=self.client_id, version=PROTOCOL_VERSION)).SerializeToString())
            first = await asyncio.wait_for(call.read(), self._timeout)
        except grpc.aio.AioRpcError as exc:
            await link.close()
            raise _lost(exc) from None
        except asyncio.TimeoutError:
            await link.close()
            raise ConnectionLost(Code.UNAVAILABLE,
                                 f"no Welcome from {self.address} within {self._timeout:g} s"
                                 ) from None
        if first is not grpc.aio.EOF:
            try:
                first = pb.ServerFrame.FromString(first)
            except DecodeError:
                first = pb.ServerFrame()
        if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
            status = await link.status()
            await link.close()
            raise status
        link.backend = first.welcome.backend
        return link


class _GrpcLink:
    def __init__(self, channel: grpc.aio.Channel, call: grpc.aio.StreamStreamCall,
                 client_id: int, max_bytes: int) -> None:
        self.backend = ""
        self._channel = channel
        self._call = call
        self._lock = asyncio.Lock()
        self._assembler = Reassembler(who="the coordinator", allowed=SERVER_KINDS,
                                      max_bytes=max_bytes)

    async def send(self, message: Message) -> None:
        async with self._lock:
            try:
                for data in iter_frames(message):
                    await self._call.write(data)
            except grpc.aio.AioRpcError as exc:
                raise _lost(exc) from None
            except asyncio.InvalidStateError:
                raise await self.status() from None

    async def recv(self) -> Message:
        while True:
            try:
                item = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                raise _lost(exc) from None
            if item is grpc.aio.EOF:
                raise await self.status()
            try:
                view = split_frame(item)
                if view is None:
                    frame = pb.ServerFrame.FromString(item)
                    if frame.WhichOneof("body") != "frame":
                        raise Rejected(Code.INVALID_ARGUMENT,
                                       "the coordinator sent a second Welcome")
                    message = self._assembler.feed(frame.frame)
                else:
                    message = self._assembler.feed(view)
            except (Rejected, DecodeError) as exc:
                self._call.cancel()
                raise ConnectionLost(Code.INTERNAL, str(exc)) from None
            if message is not None:
                return message

    async def status(self) -> ConnectionLost:
        code = await self._call.code()
        details = await self._call.details()
        return ConnectionLost(Code[code.name], details or "stream ended")

    async def close(self) -> None:
        self._call.cancel()
        await self._channel.close()


def _lost(exc: grpc.aio.AioRpcError) -> ConnectionLost:
    return ConnectionLost(Code[exc.code().name], exc.details() or str(exc.code()))
