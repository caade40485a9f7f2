"""Cutting :class:`~transport._messages.Message` into protobuf frames and back.

A message travels as a run of ``blindsum.v1.Frame``: the first holds the header, each
holds at most :data:`CHUNK_BYTES` of payload, the last has ``last = true``. The
:class:`Reassembler` checks every rule and raises :class:`~transport.Rejected` with a
status naming the rule and the sender.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
from collections.abc import Iterator

import numpy as np
from google.protobuf.message import DecodeError

from secagg import Config
from transport._errors import Code, Rejected
from transport._generated import blindsum_pb2 as pb
from transport._messages import Kind, Message, Payload, payload_bytes, payload_size

__all__ = [
    "CHUNK_BYTES",
    "GRPC_MESSAGE_LIMIT",
    "to_frames",
    "serialize_frames",
    "iter_frames",
    "split_frame",
    "FrameView",
    "Reassembler",
]

CHUNK_BYTES = 1 << 20
# gRPC's per-frame limit on both sides: a chunk plus headers, with room for peers
# that cut 4 MiB chunks. Whole messages are limited by ``max_message_bytes``.
GRPC_MESSAGE_LIMIT = 8 << 20


def config_to_proto(config: Config, out: pb.Header) -> None:
    for key, value in config.items():
        slot = out.config[key]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        elif isinstance(value, float):
            slot.float_value = value
        else:
            slot.string_value = str(value)


def config_from_proto(header: pb.Header) -> dict[str, bool | int | float | str]:
    out: dict[str, bool | int | float | str] = {}
    for key, value in header.config.items():
        which = value.WhichOneof("value")
        if which is None:
            raise ValueError(f"config entry {key!r} has no value")
        out[key] = getattr(value, which)
    return out


def _header(message: Message) -> pb.Header:
    header = pb.Header(
        kind=pb.Kind.Value(f"KIND_{message.kind.name}"),
        round_id=message.round_id,
        size=payload_size(message.payload),
        detail=message.detail,
        stage=message.stage,
    )
    config_to_proto(message.config, header)
    return header


def to_frames(message: Message, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.Frame]:
    """The frames of one message (at least one, even with an empty payload)."""
    header = _header(message)
    payload = payload_bytes(message.payload)
    view = memoryview(payload)
    n = len(view)
    if n <= chunk_bytes:
        yield pb.Frame(header=header, data=bytes(payload), last=True)
        return
    for start in range(0, n, chunk_bytes):
        end = min(start + chunk_bytes, n)
        frame = pb.Frame(data=bytes(view[start:end]), last=end == n)
        if start == 0:
            frame.header.CopyFrom(header)
        yield frame


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Tags (field << 3 | wire type): ClientFrame.frame and ServerFrame.frame are both
# field 2 (length-delimited); Frame.header 1, Frame.data 2 (both LEN), Frame.last 3.
_WRAP_FRAME = b"\x12"
_HEADER = b"\x0a"
_DATA = b"\x12"
_LAST = b"\x18\x01"


def serialize_frames(message: Message, *, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    """The wire bytes of ``ClientFrame``/``ServerFrame`` ``{frame: ...}`` for each frame.

    The same bytes protobuf would write (field order aside), built with one copy of
    the payload instead of three (straight from a tuple payload's buffers, never
    concatenated first); parsed by ``ClientFrame.FromString`` as usual.
    """
    return list(iter_frames(message, chunk_bytes=chunk_bytes))


def iter_frames(message: Message, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """:func:`serialize_frames` one frame at a time: a sender that writes each frame
    before asking for the next holds one frame's copy of the payload, not all."""
    header = _header(message).SerializeToString()
    pieces = _pieces(message.payload)
    n = sum(len(p) for p in pieces)
    for start in range(0, max(n, 1), chunk_bytes):
        end = min(start + chunk_bytes, n)
        parts: list[bytes | memoryview] = []
        if start == 0:
            parts += [_HEADER, _varint(len(header)), header]
        if end > start:
            parts += [_DATA, _varint(end - start), *_take(pieces, end - start)]
        if end == n:
            parts.append(_LAST)
        inner = sum(len(p) for p in parts)
        yield b"".join([_WRAP_FRAME, _varint(inner), *parts])


def _pieces(payload: Payload) -> collections.deque[memoryview]:
    """The payload's non-empty buffers as byte views, in order."""
    buffers = payload if isinstance(payload, tuple) else (payload,)
    views = (memoryview(b).cast("B") for b in buffers)
    return collections.deque(v for v in views if len(v))


def _take(pieces: collections.deque[memoryview], n: int) -> list[memoryview]:
    """Views of the next ``n`` bytes, consumed from the front of ``pieces``."""
    out = []
    while n:
        head = pieces[0]
        if len(head) <= n:
            out.append(pieces.popleft())
            n -= len(head)
        else:
            out.append(head[:n])
            pieces[0] = head[n:]
            n = 0
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class FrameView:
    """A ``Frame`` read without copying its data (see :func:`split_frame`)."""

    header: pb.Header | None
    data: bytes | memoryview
    last: bool


def _read_varint(mv: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(mv))):
        b = mv[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i + 1
        shift += 7
    raise IndexError("bad varint")


def split_frame(raw: bytes) -> FrameView | None:
    """Read ``{frame (2): Frame}`` wire bytes with the data as a view into ``raw``.

    Only the plain encoding :func:`serialize_frames` writes is taken (each field at
    most once, ``last`` 0 or 1); anything else returns ``None`` and is left to
    protobuf's parser, which also produces the errors for malformed input.
    """
    mv = memoryview(raw)
    try:
        if len(mv) < 2 or mv[0] != 0x12:
            return None
        size, pos = _read_varint(mv, 1)
        if pos + size != len(mv):
            return None
        header, data, last, seen = None, memoryview(b""), False, set()
        while pos < len(mv):
            tag = mv[pos]
            if tag in seen:
                return None
            seen.add(tag)
            if tag in (0x0A, 0x12):
                n, pos = _read_varint(mv, pos + 1)
                if pos + n > len(mv):
                    return None
                if tag == 0x0A:
                    header = pb.Header.FromString(mv[pos:pos + n])
                else:
                    data = mv[pos:pos + n]
                pos += n
            elif tag == 0x18:
                flag, pos = _read_varint(mv, pos + 1)
                if flag > 1:
                    return None
                last = flag == 1
            else:
                return None
        return FrameView(header, data, last)
    except (IndexError, DecodeError):
        return None


_EMPTY = np.empty(0, dtype=np.uint8)

#: bytes of idle reassembly buffers a process keeps for reuse
POOL_BYTES = 1 << 30


class _BufferPool:
    """Reassembly buffers kept for reuse across messages.

    Fresh memory costs a page fault on first touch (at 100 clients x 8 MB that is
    800 MB of new pages per round, most of the coordinator's time); reused memory does
    not. A buffer is handed out again only when nothing else references it: its
    reference count is back to the pool's own, so the receiver of a lent payload (and
    every array decoded from it) has let go, and no lent bytes are ever overwritten.
    At most :data:`POOL_BYTES` are kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._items: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, at_least: int) -> np.ndarray | None:
        """The smallest free buffer of at least ``at_least`` bytes, or ``None``."""
        with self._lock:
            best = -1
            for i in range(len(self._items)):
                # 2: the list's reference and getrefcount's argument; nobody else's
                if len(self._items[i]) >= at_least and sys.getrefcount(self._items[i]) == 2 and (
                        best < 0 or len(self._items[i]) < len(self._items[best])):
                    best = i
            return None if best < 0 else self._items[best]

    def keep(self, buffer: np.ndarray) -> None:
        """Add a newly allocated buffer, if it fits under the cap (else it is freed as
        usual once its last user lets go). Free buffers make room for it first."""
        with self._lock:
            total = sum(len(b) for b in self._items)
            while total + len(buffer) > self._max:
                free = [i for i in range(len(self._items)) if sys.getrefcount(self._items[i]) == 2]
                if not free:
                    return
                total -= len(self._items.pop(free[0]))
            self._items.append(buffer)


_POOL = _BufferPool(POOL_BYTES)


class Reassembler:
    """Turns the frames from one peer back into messages, checking every rule.

    ``allowed`` are the kinds this peer may send; ``who`` names it in errors.
    """

    def __init__(self, *, who: str, allowed: frozenset[Kind], max_bytes: int) -> None:
        self._who = who
        self._allowed = allowed
        self._max = max_bytes
        self._header: pb.Header | None = None
        self._buf = _EMPTY
        self._have = 0

    def feed(self, frame: pb.Frame | FrameView) -> Message | None:
        """Take one frame; return the message it completes, if any.

        Raises:
            Rejected: header missing or repeated, unknown kind, oversize payload,
                more or fewer bytes than the header declared.
        """
        if isinstance(frame, FrameView):
            head, data, last = frame.header, frame.data, frame.last
        else:
            head = frame.header if frame.HasField("header") else None
            data, last = frame.data, frame.last
        if head is not None:
            if self._header is not None:
                raise self._bad("sent a new header before the previous message's last frame")
            self._start(head)
        elif self._header is None:
            raise self._bad("sent a frame without a header at the start of a message")
        assert self._header is not None
        size = self._header.size
        if self._have + len(data) > size:
            raise self._bad(f"sent more than the {size} bytes its header declared")
        payload = self._collect(data, size, first=head is not None, last=last)
        if payload is None:
            return None
        header, have = self._header, self._have
        self._header, self._buf, self._have = None, _EMPTY, 0
        if have != header.size:
            raise self._bad(f"ended a message after {have} of {header.size} declared bytes")
        try:
            config = config_from_proto(header)
        except ValueError as exc:
            raise self._bad(str(exc)) from None
        return Message(
            kind=Kind(header.kind),
            round_id=header.round_id,
            payload=payload,
            config=config,
            detail=header.detail,
            stage=header.stage,
        )

    def _collect(self, data: bytes | memoryview, size: int, *, first: bool, last: bool
                 ) -> bytes | memoryview | None:
        """Take one frame's data; at the last frame return the message's payload.

        A one-frame message's data is returned as bytes. The frames of a longer one are
        copied, as they come, into one private buffer (so each frame can be freed at
        once) and the payload is a writable view of it, which the receiver may decode
        in place. The buffer is a NumPy array: not zeroed first, and eligible for
        transparent huge pages (far fewer page faults than a ``bytearray``); a free
        buffer of the declared size from the process's pool is reused when there is one
        (see :class:`_BufferPool`). A new one grows to at most 8 times the bytes
        received, never to a size only announced.
        """
        if first and last:
            self._have = len(data)
            return data if isinstance(data, bytes) else bytes(data)
        end = self._have + len(data)
        if end > len(self._buf):
            reused = _POOL.take(size)  # room for the whole declared message, allocating nothing
            if reused is None:
                reused = np.empty(min(size, max(8 * end, 1 << 20)), dtype=np.uint8)
                if len(reused) == size:
                    _POOL.keep(reused)
            reused[:self._have] = self._buf[:self._have]
            self._buf = reused
        self._buf[self._have:end] = np.frombuffer(data, dtype=np.uint8)
        self._have = end
        return self._buf[:end].data if last else None

    def _start(self, header: pb.Header) -> None:
        try:
            kind = Kind(header.kind)
        except ValueError:
            raise self._bad(f"sent a message of unknown kind {header.kind}") from None
        if kind not in self._allowed:
            raise self._bad(f"may not send {kind.name} messages")
        if header.size > self._max:
            raise Rejected(
                Code.RESOURCE_EXHAUSTED,
                f"{self._who} announced a {header.size}-byte {kind.name} message; "
                f"the limit is {self._max} bytes",
            )
        self._header = header

    def _bad(self, what: str) -> Rejected:
        return Rejected(Code.INVALID_ARGUMENT, f"{self._who} {what}")
