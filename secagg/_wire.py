"""Versioned byte encoding of protocol messages, shared with :mod:`transport`.

Every message is a frozen dataclass registered here with a one-byte tag. The
encoding is ``b"BS" | version | tag | fields``; fields are written in declaration
order from their type annotations, so a message class is its own schema:

- ``int`` as signed 64-bit, ``float`` as IEEE double, ``bool`` as one byte,
- ``str`` and ``bytes`` with a 32-bit length prefix,
- ``numpy.ndarray`` as dtype string, shape and raw little-endian bytes,
- ``tuple[T, ...]`` with a 32-bit count, ``tuple[A, B]`` element-wise,
- ``X | None`` with a presence byte, nested dataclasses recursively.

Decoding never trusts a length: truncated, oversized or trailing bytes raise
:class:`~secagg.DecodeError` naming the peer that sent them.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from secagg._errors import DecodeError

__all__ = ["register", "encode", "encode_parts", "decode", "WIRE_VERSION", "MAX_ARRAY_BYTES"]

WIRE_VERSION = 1
_MAGIC = b"BS"
MAX_ARRAY_BYTES = 1 << 34
_ALLOWED_DTYPES = frozenset({"<u2", "<u4", "<u8", "<i8", "<f8", "<f4", "|u1"})

_Writer = Callable[[list[Any], Any], None]
_Reader = Callable[["_Cursor"], Any]
_by_tag: dict[int, tuple[type, _Reader]] = {}
_by_type: dict[type, tuple[int, _Writer]] = {}

M = TypeVar("M")


class _Cursor:
    __slots__ = ("buf", "pos", "borrow")

    def __init__(self, buf: memoryview, borrow: bool = False) -> None:
        self.buf = buf
        self.pos = 0
        self.borrow = borrow

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise ValueError(f"truncated: need {n} bytes at offset {self.pos}")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def unpack(self, fmt: struct.Struct) -> Any:
        return fmt.unpack(self.take(fmt.size))[0]


_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_U8 = struct.Struct("<B")


def _w_int(out: list[Any], v: Any) -> None:
    out.append(_I64.pack(v))


def _w_float(out: list[Any], v: Any) -> None:
    out.append(_F64.pack(v))


def _w_bool(out: list[Any], v: Any) -> None:
    out.append(_U8.pack(1 if v else 0))


def _w_bytes(out: list[Any], v: Any) -> None:
    out.append(_U32.pack(len(v)))
    out.append(bytes(v))


def _w_str(out: list[Any], v: Any) -> None:
    _w_bytes(out, v.encode("utf-8"))


def _w_array(out: list[Any], v: Any) -> None:
    arr = np.ascontiguousarray(v)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    _w_str(out, dt.str)
    out.append(_U32.pack(arr.ndim))
    out.extend(_I64.pack(s) for s in arr.shape)
    # a view, not a copy: encode() joins everything into one bytes object once,
    # encode_parts() leaves that to the sender
    out.append(np.ascontiguousarray(arr.astype(dt, copy=False)).reshape(-1).view(np.uint8).data)


def _r_int(c: _Cursor) -> int:
    return int(c.unpack(_I64))


def _r_float(c: _Cursor) -> float:
    return float(c.unpack(_F64))


def _r_bool(c: _Cursor) -> bool:
    b = c.unpack(_U8)
    if b not in (0, 1):
        raise ValueError(f"bool byte must be 0 or 1, got {b}")
    return bool(b)


def _r_bytes(c: _Cursor) -> bytes:
    return bytes(c.take(c.unpack(_U32)))


def _r_str(c: _Cursor) -> str:
    return _r_bytes(c).decode("utf-8")


def _r_array(c: _Cursor) -> np.ndarray:
    dts = _r_str(c)
    if dts not in _ALLOWED_DTYPES:
        raise ValueError(f"array dtype {dts!r} is not allowed")
    ndim = c.unpack(_U32)
    if ndim > 8:
        raise ValueError(f"array has {ndim} dimensions, at most 8 allowed")
    shape = tuple(_r_int(c) for _ in range(ndim))
    if any(s < 0 for s in shape):
        raise ValueError(f"negative array shape {shape}")
    dt = np.dtype(dts)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ValueError(f"array of {nbytes} bytes exceeds the {MAX_ARRAY_BYTES}-byte limit")
    arr = np.frombuffer(c.take(nbytes), dtype=dt).reshape(shape)
    # A private, writable copy (the caller's buffer may be reused), unless the caller
    # hands its buffer over (decode(..., borrow=True)).
    return arr if c.borrow else arr.copy()


_PRIMITIVES: dict[Any, tuple[_Writer, _Reader]] = {
    int: (_w_int, _r_int),
    float: (_w_float, _r_float),
    bool: (_w_bool, _r_bool),
    bytes: (_w_bytes, _r_bytes),
    str: (_w_str, _r_str),
    np.ndarray: (_w_array, _r_array),
}


def _codec_for(tp: Any) -> tuple[_Writer, _Reader]:
    if tp in _PRIMITIVES:
        return _PRIMITIVES[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is np.ndarray:
        return _PRIMITIVES[np.ndarray]
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner_w, inner_r = _codec_for(next(a for a in args if a is not type(None)))

        def w_opt(out: list[Any], v: Any) -> None:
            _w_bool(out, v is not None)
            if v is not None:
                inner_w(out, v)

        def r_opt(c: _Cursor) -> Any:
            return inner_r(c) if _r_bool(c) else None

        return w_opt, r_opt
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item_w, item_r = _codec_for(args[0])

        def w_seq(out: list[Any], v: Any) -> None:
            out.append(_U32.pack(len(v)))
            for item in v:
                item_w(out, item)

        def r_seq(c: _Cursor) -> tuple[Any, ...]:
            n = c.unpack(_U32)
            if n > len(c.buf) - c.pos:
                raise ValueError(f"sequence count {n} exceeds the remaining bytes")
            return tuple(item_r(c) for _ in range(n))

        return w_seq, r_seq
    if origin is tuple:
        codecs = [_codec_for(a) for a in args]

        def w_tup(out: list[Any], v: Any) -> None:
            for (w, _), item in zip(codecs, v, strict=True):
                w(out, item)

        def r_tup(c: _Cursor) -> tuple[Any, ...]:
            return tuple(r(c) for _, r in codecs)

        return w_tup, r_tup
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_codec(tp)
    raise TypeError(f"no wire codec for type {tp!r}")


def _dataclass_codec(cls: type) -> tuple[_Writer, _Reader]:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _codec_for(hints[f.name])) for f in dataclasses.fields(cls)]

    def w_dc(out: list[Any], v: Any) -> None:
        for name, (w, _) in fields:
            w(out, getattr(v, name))

    def r_dc(c: _Cursor) -> Any:
        return cls(**{name: r(c) for name, (_, r) in fields})

    return w_dc, r_dc


def register(tag: int) -> Callable[[type[M]], type[M]]:
    """Class decorator: give a frozen dataclass message a unique one-byte wire tag."""

    def deco(cls: type[M]) -> type[M]:
        if not 0 < tag < 256:
            raise ValueError(f"tag must be in 1..255, got {tag}")
        if tag in _by_tag:
            raise ValueError(f"tag {tag} already used by {_by_tag[tag][0].__name__}")
        writer, reader = _dataclass_codec(cls)
        _by_tag[tag] = (cls, reader)
        _by_type[cls] = (tag, writer)
        return cls

    return deco


def encode(message: object) -> bytes:
    """Encode a registered message to bytes."""
    return b"".join(encode_parts(message))


def encode_parts(message: object) -> tuple[bytes | memoryview, ...]:
    """The buffers whose concatenation is ``encode(message)``, arrays as views of their
    data (no copy): for senders that cut the bytes into frames anyway. The views share
    memory with the message, which must not change while they are in use."""
    try:
        tag, writer = _by_type[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a registered message") from None
    out: list[Any] = [_MAGIC, bytes((WIRE_VERSION, tag))]
    writer(out, message)
    return tuple(out)


def decode(data: bytes | bytearray | memoryview, *, peer: int | str = "unknown",
           borrow: bool = False) -> Any:
    """Decode bytes produced by :func:`encode`.

    Arrays are private copies, unless ``borrow``: then they are views into ``data``
    (writable when ``data`` is), which the caller must not change afterwards.

    Raises:
        DecodeError: the bytes are not a valid message (``peer`` is named in the error).
    """
    view = memoryview(data).cast("B")
    if len(view) < 4 or bytes(view[:2]) != _MAGIC:
        raise DecodeError(peer, "not a blindsum message (bad magic)")
    if view[2] != WIRE_VERSION:
        raise DecodeError(peer, f"wire version {view[2]} is not supported (want {WIRE_VERSION})")
    try:
        cls, reader = _by_tag[view[3]]
    except KeyError:
        raise DecodeError(peer, f"unknown message tag {view[3]}") from None
    cursor = _Cursor(view[4:], borrow)
    try:
        message = reader(cursor)
    except (ValueError, TypeError, UnicodeDecodeError, struct.error) as exc:
        raise DecodeError(peer, f"malformed {cls.__name__}: {exc}") from exc
    if cursor.pos != len(cursor.buf):
        raise DecodeError(peer, f"{len(cursor.buf) - cursor.pos} trailing bytes after {cls.__name__}")
    return message
