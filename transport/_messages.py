"""Transport-neutral messages between the coordinator and a client.

A :class:`Message` is what both transports (gRPC and in-process) carry. Its payload
is opaque bytes: :func:`encode_parameters` output for ``FIT`` and ``EVALUATE``,
``secagg.encode`` output for ``PROTOCOL``. The gRPC transport cuts payloads into frames
of about 1 MiB (:mod:`transport._frames`); the in-process one passes the object as it
is. A sender may give the payload as a tuple of buffers to be concatenated
(``secagg.encode_parts``), so that a large vector is copied once, straight into the
frames; a received payload is always one buffer.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from secagg import Config, Parameters

__all__ = [
    "Kind",
    "Message",
    "Payload",
    "payload_size",
    "payload_bytes",
    "is_lent",
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
    EVALUATE = 8


CLIENT_KINDS = frozenset({Kind.READY, Kind.PROTOCOL, Kind.NO_REPLY, Kind.ABORT})
SERVER_KINDS = frozenset(
    {Kind.FIT, Kind.EVALUATE, Kind.PROTOCOL, Kind.ROUND_END, Kind.FINISHED}
)

_EMPTY: Mapping[str, bool | int | float | str] = MappingProxyType({})

# One buffer, or buffers to concatenate (views must not change while the message lives).
# A received payload is one buffer; a writable one (the transport's reassembly buffer)
# belongs to the receiver, who may decode it in place.
Buffer = bytes | bytearray | memoryview
Payload = Buffer | tuple[bytes | memoryview, ...]


def payload_size(payload: Payload) -> int:
    """Bytes in ``payload`` (the concatenation, for a tuple)."""
    if isinstance(payload, tuple):
        return sum(memoryview(p).nbytes for p in payload)
    return memoryview(payload).nbytes


def payload_bytes(payload: Payload) -> Buffer:
    """``payload`` as one buffer (a tuple is concatenated)."""
    return b"".join(payload) if isinstance(payload, tuple) else payload


def is_lent(payload: Payload) -> bool:
    """Whether ``payload`` is a received, writable buffer its receiver may decode in place."""
    return not isinstance(payload, tuple) and not memoryview(payload).readonly



@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One logical message; ``config`` only on ``FIT`` and ``EVALUATE``; ``detail`` is
    human-readable."""

    kind: Kind
    round_id: int
    payload: Payload = b""
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


_MAGIC = b"BSP2"  # BSP1 (no padding) is still read: checkpoints written before
_MAGIC_V1 = b"BSP1"
_ALIGN = 16  # BSP2 pads so that each array's data starts at a multiple of this
_DIMS = struct.Struct("<B")
_SIZE = struct.Struct("<Q")
_KINDS = "biufc"  # bool, signed, unsigned, float, complex: never objects


def encode_parameters(parameters: Sequence[np.ndarray]) -> bytes:
    """Serialise a list of numeric arrays: ``BSP2``, count, then per array its dtype,
    shape, zero padding to a multiple of 16 bytes from the start, and raw bytes (so a
    receiver holding the message in an aligned buffer can use the arrays in place).
    (Not ``.npy``: its header is parsed with ``ast``, which is not thread-safe on
    CPython 3.11, and clients decode in worker threads.)

    Raises:
        TypeError: an array is not numeric.
    """
    out = [_MAGIC, _COUNT.pack(len(parameters))]
    pos = len(_MAGIC) + _COUNT.size
    for i, arr in enumerate(parameters):
        a = np.asarray(arr, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"parameter {i} has dtype {a.dtype}, which is not numeric")
        dt = a.dtype.str.encode("ascii")
        head = [_DIMS.pack(len(dt)), dt, _DIMS.pack(a.ndim)] + [_SIZE.pack(n) for n in a.shape]
        pos += sum(len(h) for h in head)
        pad = -pos % _ALIGN
        out += head + [bytes(pad), a.tobytes()]
        pos += pad + a.nbytes
    return b"".join(out)


def decode_parameters(data: bytes | bytearray | memoryview, *, borrow: bool = False
                      ) -> Parameters:
    """Inverse of :func:`encode_parameters` (arrays are fresh and writable).

    With ``borrow`` and a writable ``data`` (a buffer the caller hands over and never
    changes again), arrays whose data is aligned for their dtype are views into
    ``data`` instead of copies.

    Raises:
        ValueError: the bytes are not a list of arrays (bad magic, truncated, a
            non-numeric dtype, trailing bytes).
    """
    view = memoryview(data).cast("B")
    magic = bytes(view[:4])
    if magic not in (_MAGIC, _MAGIC_V1):
        raise ValueError("parameters do not start with BSP2 (or BSP1)")
    padded = magic == _MAGIC
    pos = 4

    def take(n: int) -> memoryview:
        nonlocal pos
        if n < 0 or pos + n > len(view):
            raise ValueError(f"parameters are truncated at byte {pos}")
        pos += n
        return view[pos - n:pos]

    (count,) = _COUNT.unpack(take(_COUNT.size))
    if count > _MAX_ARRAYS:
        raise ValueError(f"parameters hold {count} arrays, at most {_MAX_ARRAYS} allowed")
    out: Parameters = []
    for i in range(count):
        try:
            dt = np.dtype(bytes(take(_DIMS.unpack(take(1))[0])).decode("ascii"))
        except (TypeError, UnicodeDecodeError):
            raise ValueError(f"parameter array {i} has a malformed dtype") from None
        if dt.kind not in _KINDS:
            raise ValueError(f"parameter array {i} has dtype {dt}, which is not numeric")
        (ndim,) = _DIMS.unpack(take(1))
        shape = tuple(_SIZE.unpack(take(_SIZE.size))[0] for _ in range(ndim))
        nbytes = dt.itemsize * int(np.prod(shape, dtype=object))
        if padded and any(take(-pos % _ALIGN)):
            raise ValueError(f"parameter array {i} has nonzero padding")
        arr = np.frombuffer(take(nbytes), dtype=dt).reshape(shape)
        # user code gets these: views only when they are as good as a fresh copy
        out.append(arr if borrow and not view.readonly and arr.flags.aligned else arr.copy())
    if pos != len(view):
        raise ValueError(f"{len(view) - pos} trailing bytes after the parameters")
    return out
