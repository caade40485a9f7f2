"""The copy-saving paths of the transport give the same bytes and the same numbers as
the plain ones, and keep their bounds: scatter payloads frame like one buffer,
reassembled payloads are private and writable, lent buffers decode in place, and a
buffer never grows to a size that was only announced."""

from __future__ import annotations

import numpy as np
import pytest

import secagg
import transport
from secagg._plain import PlainUpdate
from transport._client import _flat_difference
from transport._frames import Reassembler, serialize_frames, split_frame
from transport._generated import blindsum_pb2 as pb
from transport._messages import (
    CLIENT_KINDS,
    decode_parameters,
    encode_parameters,
    is_lent,
    payload_size,
)


def _update(dim: int) -> PlainUpdate:
    vec = np.random.default_rng(dim).normal(size=dim)
    return PlainUpdate(round_id=3, vector=vec, weight=2.0)


@pytest.mark.parametrize("dim", [0, 1, 131_072, 131_073, 400_000])
def test_scatter_payload_frames_like_the_joined_bytes(dim: int) -> None:
    update = _update(dim)
    parts = secagg.encode_parts(update)
    joined = secagg.encode(update)
    assert b"".join(parts) == joined
    as_parts = transport.Message(kind=transport.Kind.PROTOCOL, round_id=3, payload=parts)
    as_bytes = transport.Message(kind=transport.Kind.PROTOCOL, round_id=3, payload=joined)
    assert payload_size(as_parts.payload) == len(joined)
    assert serialize_frames(as_parts) == serialize_frames(as_bytes)
    assert serialize_frames(as_parts, chunk_bytes=7) == serialize_frames(as_bytes, chunk_bytes=7)


def _reassemble(message: transport.Message, chunk_bytes: int = 1 << 20) -> transport.Message:
    assembler = Reassembler(who="client 1", allowed=CLIENT_KINDS, max_bytes=1 << 30)
    got = [assembler.feed(split_frame(raw)) for raw in  # type: ignore[arg-type]
           serialize_frames(message, chunk_bytes=chunk_bytes)]
    assert all(g is None for g in got[:-1]) and got[-1] is not None
    return got[-1]


def test_a_multi_frame_payload_is_lent_and_decodes_in_place() -> None:
    update = _update(300_000)
    sent = transport.Message(kind=transport.Kind.PROTOCOL, round_id=3,
                             payload=secagg.encode_parts(update))
    got = _reassemble(sent)
    assert is_lent(got.payload)
    lent = secagg.decode(got.payload, peer=1, borrow=True)
    copied = secagg.decode(got.payload, peer=1)
    np.testing.assert_array_equal(lent.vector, update.vector)
    np.testing.assert_array_equal(copied.vector, update.vector)
    assert np.shares_memory(lent.vector, np.asarray(got.payload))
    assert not np.shares_memory(copied.vector, np.asarray(got.payload))
    lent.vector[0] = 42.0  # writable, and private to the receiver
    assert update.vector[0] != 42.0


def test_a_one_frame_payload_is_bytes_and_never_lent() -> None:
    got = _reassemble(transport.Message(kind=transport.Kind.READY, round_id=3, payload=b"abc"))
    assert got.payload == b"abc" and isinstance(got.payload, bytes)
    assert not is_lent(got.payload)


def test_parameters_decode_in_place_only_from_a_writable_buffer() -> None:
    params = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([1, 2], np.float32),
              np.array(3.5), np.arange(6, dtype=np.int64).reshape(3, 2)]
    data = encode_parameters(params)
    aligned = np.frombuffer(data, np.uint8).copy()  # like the transport's reassembly buffer
    for buffer, lent in ((data, False), (aligned.data, True)):
        out = decode_parameters(buffer, borrow=True)
        for a, b in zip(out, params, strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.shape == b.shape and a.flags.writeable and a.flags.aligned
        whole = np.frombuffer(buffer, np.uint8)
        # BSP2 pads every array's data to 16 bytes: all of them are used in place
        assert all(np.shares_memory(a, whole) is lent for a in out)
    misaligned = np.empty(len(data) + 1, np.uint8)[1:]
    misaligned[:] = np.frombuffer(data, np.uint8)
    out = decode_parameters(misaligned.data, borrow=True)
    assert not np.shares_memory(out[1], misaligned)  # float32 at an odd address: a copy


def test_parameters_of_checkpoints_written_as_bsp1_still_load() -> None:
    import struct
    arrays = [np.array([1.5, 2.5], np.float32), np.array(7, np.int8)]
    blob = b"BSP1" + struct.pack("<I", 2)
    for a in arrays:
        dt = a.dtype.str.encode()
        blob += bytes([len(dt)]) + dt + bytes([a.ndim])
        blob += b"".join(struct.pack("<Q", n) for n in a.shape) + a.tobytes()
    out = decode_parameters(blob)
    assert [o.shape for o in out] == [(2,), ()] and out[0].tolist() == [1.5, 2.5] and out[1] == 7
    padded = bytearray(encode_parameters(arrays))
    padded[padded.index(b"<f4") + 3 + 1 + 8] = 1  # the first padding byte after the shape
    with pytest.raises(ValueError, match="nonzero padding"):
        decode_parameters(bytes(padded))


def test_announced_size_alone_does_not_allocate() -> None:
    assembler = Reassembler(who="client 1", allowed=CLIENT_KINDS, max_bytes=1 << 40)
    header = pb.Header(kind=pb.KIND_PROTOCOL, round_id=3, size=1 << 40)
    assert assembler.feed(pb.Frame(header=header, data=b"x" * 1024, last=False)) is None
    assert assembler.feed(pb.Frame(data=b"y" * 1024, last=False)) is None
    assert len(assembler._buf) <= 1 << 20  # what arrived, times 8, at least 1 MiB
    with pytest.raises(transport.Rejected, match="2048 of 1099511627776"):
        assembler.feed(pb.Frame(data=b"", last=True))


def test_flat_difference_matches_flatten() -> None:
    rng = np.random.default_rng(0)
    new = [rng.normal(size=(30, 7)).astype(np.float32), np.array([True, False]),
           np.arange(5, dtype=np.int64)]
    old = [rng.normal(size=(30, 7)).astype(np.float32), np.array([False, False]),
           np.arange(5, dtype=np.int64) * 3]
    got = _flat_difference(new, old)
    np.testing.assert_array_equal(got, secagg.flatten(new) - secagg.flatten(old))
    assert got.dtype == np.float64


def test_finite_check_by_the_sum_keeps_its_verdicts() -> None:
    big = np.full(4, np.finfo(np.float64).max)  # finite entries whose sum overflows
    assert secagg.check_vector(big) is big
    for bad in (np.nan, np.inf, -np.inf):
        vec = np.zeros(10)
        vec[7] = bad
        with pytest.raises(ValueError, match="finite"):
            secagg.check_vector(vec)
    both = np.array([np.inf, -np.inf])
    with pytest.raises(ValueError, match="finite"):
        secagg.check_vector(both)


def _fit_plus(step: float):
    def fit(parameters, config):  # type: ignore[no-untyped-def]
        return [p + np.float32(step) for p in parameters], 1, {}
    return fit


def test_update_buffer_is_reused_only_without_transforms() -> None:
    params = [np.zeros(1000, np.float32)]
    runtime = transport.ClientRuntime(client_id=0, fit=_fit_plus(0.5), connector=None,  # type: ignore[arg-type]
                                      seed=0)
    backend = secagg.PlainBackend()

    def update(round_id: int, config: dict) -> np.ndarray:  # type: ignore[type-arg]
        msg = transport.Message(kind=transport.Kind.FIT, round_id=round_id,
                                payload=encode_parameters(params), config=config)
        session = runtime._prepare(backend, msg)
        return session._vector  # type: ignore[attr-defined,no-any-return]

    first = update(1, {})
    first_values = first.copy()
    second = update(2, {})
    assert second is first  # the last round's update, overwritten
    np.testing.assert_array_equal(second, first_values)
    np.testing.assert_array_equal(second, np.full(1000, 0.5))
    kept: list[np.ndarray] = []

    def keep(vector: np.ndarray, config: object, rng: object) -> np.ndarray:
        kept.append(vector)  # a transform may hold on to the update (error feedback)
        return vector

    if "test.zero-copy.keep" not in secagg._strategy._transforms:
        secagg.register_update_transform("test.zero-copy.keep", keep)
    update(3, {"blindsum.transforms": "test.zero-copy.keep"})
    assert kept and not np.shares_memory(kept[-1], first)
    held = kept[-1].copy()
    fourth = update(4, {})
    assert fourth is not kept[-1] and not np.shares_memory(fourth, kept[-1])
    np.testing.assert_array_equal(kept[-1], held)


def test_reassembly_buffers_are_reused_only_once_nobody_holds_them() -> None:
    def message(fill: float) -> transport.Message:
        return transport.Message(kind=transport.Kind.PROTOCOL, round_id=3, payload=encode_parameters(
            [np.full(100_037, fill)]))  # a size no other test uses: the pool is per process

    first = _reassemble(message(1.0), chunk_bytes=4096)
    held = decode_parameters(first.payload, borrow=True)[0]  # lent: a view of the buffer
    base = np.frombuffer(first.payload, np.uint8)
    del first
    second = _reassemble(message(2.0), chunk_bytes=4096)
    assert not np.shares_memory(base, np.frombuffer(second.payload, np.uint8))
    assert np.all(held == 1.0)  # the first payload was not overwritten
    address = np.frombuffer(second.payload, np.uint8).ctypes.data
    del second
    third = _reassemble(message(3.0), chunk_bytes=4096)  # nobody holds the second: reused
    assert np.frombuffer(third.payload, np.uint8).ctypes.data == address
    assert np.all(decode_parameters(third.payload)[0] == 3.0) and np.all(held == 1.0)
