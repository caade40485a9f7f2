"""The in-process transport: the gRPC transport's rules over asyncio queues.

For simulations and tests. Every check the gRPC server makes on a client's
messages (kinds a client may send, size limit, admission) is made here too, and a
rejection ends the link with the same status code and message.
"""

from __future__ import annotations

import asyncio
import dataclasses

from transport._client import ClientLink, Connector
from transport._coordinator import Coordinator
from transport._errors import Code, ConnectionLost, Rejected
from transport._messages import (
    CLIENT_KINDS,
    PROTOCOL_VERSION,
    Kind,
    Message,
    payload_bytes,
    payload_size,
)

__all__ = ["InProcessTransport"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Closed:
    code: Code
    message: str


class _ServerEnd:
    """The coordinator's :class:`~transport.Peer` for one in-process link."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message | _Closed] = asyncio.Queue()
        self.closed = False
        self.status = _Closed(Code.UNAVAILABLE, "the link is closed")

    def send(self, message: Message) -> None:
        if not self.closed:
            self.inbox.put_nowait(message)
            if message.kind is Kind.FINISHED:
                self.close(Code.OK, "training is over")

    def close(self, code: Code, message: str) -> None:
        if not self.closed:
            self.closed = True
            self.status = _Closed(code, message)
            self.inbox.put_nowait(self.status)


class _Link:
    def __init__(self, coordinator: Coordinator, client_id: int, end: _ServerEnd) -> None:
        self.backend = coordinator.backend.name
        self._coordinator = coordinator
        self._cid = client_id
        self._end = end

    async def send(self, message: Message) -> None:
        if self._end.closed:
            raise ConnectionLost(self._end.status.code, self._end.status.message)
        await asyncio.sleep(0)  # a real link never delivers synchronously
        if message.kind not in CLIENT_KINDS:
            exc = Rejected(Code.INVALID_ARGUMENT,
                           f"client {self._cid} may not send {message.kind.name} messages")
        elif (size := payload_size(message.payload)) > self._coordinator.config.max_message_bytes:
            exc = Rejected(Code.RESOURCE_EXHAUSTED,
                           f"client {self._cid} announced a {size}-byte "
                           f"{message.kind.name} message; the limit is "
                           f"{self._coordinator.config.max_message_bytes} bytes")
        else:  # a received payload is one immutable buffer here (never lent)
            payload = message.payload
            if not isinstance(payload, bytes):
                payload = bytes(payload_bytes(payload))
            self._coordinator.deliver(self._cid, self._end,
                                      dataclasses.replace(message, payload=payload))
            return
        self._coordinator.reject(self._cid, exc)

    async def recv(self) -> Message:
        item = await self._end.inbox.get()
        if isinstance(item, _Closed):
            self._coordinator.detach(self._cid, self._end, "link closed")
            raise ConnectionLost(item.code, item.message)
        return item

    async def close(self) -> None:
        self._end.closed = True
        self._coordinator.detach(self._cid, self._end, "client closed the link")


class InProcessTransport:
    """Connects client runtimes to a coordinator living in the same event loop."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def connector(self, client_id: int, token: str | None = None,
                  version: int = PROTOCOL_VERSION) -> Connector:
        """A :data:`~transport.Connector` for ``client_id`` (pass it to a runtime)."""

        async def connect() -> ClientLink:
            await asyncio.sleep(0)
            end = _ServerEnd()
            try:
                self.coordinator.admit(client_id, token, end, version)
            except Rejected as exc:
                raise ConnectionLost(exc.code, exc.message) from None
            return _Link(self.coordinator, client_id, end)

        return connect
