"""Cutting :class:`~transport._messages.Message` into protobuf frames and back.

A message travels as a run of ``blindsum.v1.Frame``: the first holds the header, each
holds at most :data:`CHUNK_BYTES` of payload, the last has ``last = true``. The
:class:`Reassembler` checks every rule and raises :class:`~transport.Rejected` with a
status naming the rule and the sender.
"""

from __future__ import annotations

from collections.abc import Iterator

from secagg import Config
from transport._errors import Code, Rejected
from transport._generated import blindsum_pb2 as pb
from transport._messages import Kind, Message

__all__ = ["CHUNK_BYTES", "GRPC_MESSAGE_LIMIT", "to_frames", "serialize_frames", "Reassembler"]

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
        size=len(message.payload),
        detail=message.detail,
        stage=message.stage,
    )
    config_to_proto(message.config, header)
    return header


def to_frames(message: Message, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.Frame]:
    """The frames of one message (at least one, even with an empty payload)."""
    header = _header(message)
    view = memoryview(message.payload)
    n = len(view)
    if n <= chunk_bytes:
        yield pb.Frame(header=header, data=message.payload, last=True)
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
    the payload instead of three; parsed by ``ClientFrame.FromString`` as usual.
    """
    header = _header(message).SerializeToString()
    view = memoryview(message.payload)
    n = len(view)
    out = []
    for start in range(0, max(n, 1), chunk_bytes):
        end = min(start + chunk_bytes, n)
        parts: list[bytes | memoryview] = []
        if start == 0:
            parts += [_HEADER, _varint(len(header)), header]
        if end > start:
            parts += [_DATA, _varint(end - start), view[start:end]]
        if end == n:
            parts.append(_LAST)
        inner = sum(len(p) for p in parts)
        out.append(b"".join([_WRAP_FRAME, _varint(inner), *parts]))
    return out


class Reassembler:
    """Turns the frames from one peer back into messages, checking every rule.

    ``allowed`` are the kinds this peer may send; ``who`` names it in errors.
    """

    def __init__(self, *, who: str, allowed: frozenset[Kind], max_bytes: int) -> None:
        self._who = who
        self._allowed = allowed
        self._max = max_bytes
        self._header: pb.Header | None = None
        self._parts: list[bytes] = []
        self._have = 0

    def feed(self, frame: pb.Frame) -> Message | None:
        """Take one frame; return the message it completes, if any.

        Raises:
            Rejected: header missing or repeated, unknown kind, oversize payload,
                more or fewer bytes than the header declared.
        """
        if frame.HasField("header"):
            if self._header is not None:
                raise self._bad("sent a new header before the previous message's last frame")
            self._start(frame.header)
        elif self._header is None:
            raise self._bad("sent a frame without a header at the start of a message")
        assert self._header is not None
        self._have += len(frame.data)
        if self._have > self._header.size:
            raise self._bad(f"sent more than the {self._header.size} bytes its header declared")
        self._parts.append(frame.data)
        if not frame.last:
            return None
        header, parts, have = self._header, self._parts, self._have
        self._header, self._parts, self._have = None, [], 0
        if have != header.size:
            raise self._bad(f"ended a message after {have} of {header.size} declared bytes")
        try:
            config = config_from_proto(header)
        except ValueError as exc:
            raise self._bad(str(exc)) from None
        return Message(
            kind=Kind(header.kind),
            round_id=header.round_id,
            payload=parts[0] if len(parts) == 1 else b"".join(parts),
            config=config,
            detail=header.detail,
            stage=header.stage,
        )

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
