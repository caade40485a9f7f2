"""Transport-neutral messages between the coordinator and a client.

A :class:`Message` is what both transports (gRPC and in-process) carry. Its payload
is opaque bytes: :func:`encode_parameters` output for ``FIT``, ``secagg.encode`` output
for ``PROTOCOL``. The gRPC transport cuts payloads into frames of about 1 MiB
(:mod:`transport._frames`); the in-process one passes the object as it is.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from secagg import Config, Parameters

__all__ = [
    "Kind",
    "Message",
    "PROTOCOL_VERSION",
    "encode_parameters",
    "decode_parameters",
]

PROTOCOL_VERSION = 1
_COUNT = struct.Struct("<I")
_MAX_ARRAYS = 1 << 16


class Kind(enum.IntEnum):
    """What a message means; values match ``blindsum.v1.Kind``."""

    FIT = 1
    READY = 2
    PROTOCOL = 3
    NO_REPLY = 4
    ROUND_END = 5
    FINISHED = 6
    ABORT = 7


CLIENT_KINDS = frozenset({Kind.READY, Kind.PROTOCOL, Kind.NO_REPLY, Kind.ABORT})
SERVER_KINDS = frozenset({Kind.FIT, Kind.PROTOCOL, Kind.ROUND_END, Kind.FINISHED})

_EMPTY: Mapping[str, bool | int | float | str] = MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One logical message; ``config`` only on ``FIT``, ``detail`` is human-readable."""

    kind: Kind
    round_id: int
    payload: bytes = b""
    config: Config = dataclasses.field(default_factory=lambda: _EMPTY)
    detail: str = ""
    stage: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            raise TypeError(f"kind must be a Kind, got {self.kind!r}")
        if self.round_id < 0:
            raise ValueError(f"round_id must be >= 0, got {self.round_id}")
        for key, value in self.config.items():
            if not isinstance(key, str) or not isinstance(value, bool | int | float | str):
                raise TypeError(f"config entry {key!r} must map str to bool/int/float/str")


def encode_parameters(parameters: Sequence[np.ndarray]) -> bytes:
    """Serialise a list of arrays (``.npy`` records, no pickle)."""
    buf = io.BytesIO()
    buf.write(_COUNT.pack(len(parameters)))
    for arr in parameters:
        np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def decode_parameters(data: bytes) -> Parameters:
    """Inverse of :func:`encode_parameters`.

    Raises:
        ValueError: the bytes are not a list of arrays (truncated, pickled objects, ...).
    """
    buf = io.BytesIO(data)
    head = buf.read(_COUNT.size)
    if len(head) != _COUNT.size:
        raise ValueError("parameters are truncated (no array count)")
    (count,) = _COUNT.unpack(head)
    if count > _MAX_ARRAYS:
        raise ValueError(f"parameters hold {count} arrays, at most {_MAX_ARRAYS} allowed")
    out: Parameters = []
    for i in range(count):
        try:
            out.append(np.lib.format.read_array(buf, allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"parameter array {i} is malformed: {exc}") from None
    if buf.tell() != len(data):
        raise ValueError(f"{len(data) - buf.tell()} trailing bytes after the parameters")
    return out
