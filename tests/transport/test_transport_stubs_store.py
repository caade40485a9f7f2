"""Generated stubs match the .proto; SQLite checkpoints; resuming after a restart."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import transport_testkit as kit

import secagg
import transport
from secagg._plain import PlainUpdate
from transport._messages import decode_parameters, encode_parameters

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed")
def test_regenerated_stubs_are_identical(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc",
         f"-Itransport/_generated={ROOT / 'transport'}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}",
         "transport/_generated/blindsum.proto"],
        check=True, cwd=ROOT)
    for name in ("blindsum_pb2.py", "blindsum_pb2_grpc.py", "blindsum_pb2.pyi"):
        fresh = (tmp_path / "transport" / "_generated" / name).read_bytes()
        committed = (ROOT / "transport" / "_generated" / name).read_bytes()
        assert fresh == committed, f"{name} is stale: regenerate it from blindsum.proto"


def test_parameters_round_trip_and_reject_bad_bytes() -> None:
    params = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5]), np.zeros(0),
              np.array([[True]]), np.arange(4, dtype=">i4")]
    data = encode_parameters(params)
    back = decode_parameters(data)
    assert [a.dtype for a in back] == [a.dtype for a in params]
    for a, b in zip(params, back, strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.flags.writeable
    with pytest.raises(ValueError, match="trailing"):
        decode_parameters(data + b"x")
    for cut in (1, 5, 30, len(data) - 1):
        with pytest.raises(ValueError, match="truncated|BSP2"):
            decode_parameters(data[:cut])
    with pytest.raises(TypeError, match="not numeric"):
        encode_parameters([np.array([{"a": 1}], dtype=object)])
    forged = data.replace(b"<f4", b"|O8", 1)
    with pytest.raises(ValueError, match="not numeric|malformed"):
        decode_parameters(forged)


def test_store_keeps_model_counters_and_log(tmp_path: Path) -> None:
    store = transport.Store(tmp_path)
    assert store.load() is None
    rec = transport.RoundRecord(server_round=1, round_id=3, status="completed", sampled=(1, 2),
                                selected=(1, 2), contributors=(1,), dropped={"collect": (2,)})
    store.save(completed_rounds=1, next_round_id=4, parameters=[np.ones(3)], record=rec)
    store.close()
    cp = transport.Store(tmp_path).load()
    assert cp is not None and cp.completed_rounds == 1 and cp.next_round_id == 4
    np.testing.assert_array_equal(cp.parameters[0], np.ones(3))
    assert cp.log == (rec,)
    with sqlite3.connect(tmp_path / "coordinator.sqlite") as db:
        (n,) = db.execute("SELECT COUNT(*) FROM rounds").fetchone()
    assert n == 1


def test_reserved_round_ids_survive_a_crash(tmp_path: Path) -> None:
    store = transport.Store(tmp_path)
    store.reserve_round_id(1, [np.zeros(2)])  # round 1 starts, then the process dies
    cp = transport.Store(tmp_path).load()
    assert cp is not None and cp.completed_rounds == 0 and cp.next_round_id == 2
    np.testing.assert_array_equal(cp.parameters[0], np.zeros(2))
    store.reserve_round_id(2, [np.ones(2)])  # an existing checkpoint keeps its model
    cp = transport.Store(tmp_path).load()
    assert cp is not None and cp.next_round_id == 3
    np.testing.assert_array_equal(cp.parameters[0], np.zeros(2))


def test_restarted_coordinator_resumes_after_the_last_completed_round(tmp_path: Path) -> None:
    def federation(rounds: int) -> transport.Coordinator:
        coord = transport.Coordinator(
            strategy=kit.TinyAvg(), parameters=kit.initial_parameters(),
            backend=secagg.PlainBackend(), config=kit.config(rounds=rounds, clients_per_round=2),
            store=transport.Store(tmp_path))
        asyncio.run(kit.run_federation(kit.InProcHarness(), coord,
                                       {c: kit.runtime(c) for c in (1, 2)}))
        return coord

    first = federation(2)
    assert first.completed_rounds == 2
    second = federation(3)
    assert second.completed_rounds == 3
    assert [r.server_round for r in second.log if r.completed] == [1, 2, 3]
    assert len({r.round_id for r in second.log}) == len(second.log)
    np.testing.assert_allclose(second.parameters[0], 3 * kit.expected_mean([1, 2]), rtol=1e-6)


def test_coordinator_config_names_the_bad_setting() -> None:
    with pytest.raises(transport.ConfigError, match="clients_per_round"):
        transport.CoordinatorConfig(rounds=1, clients_per_round=1, min_clients=2)
    with pytest.raises(transport.ConfigError, match="stage_deadline"):
        transport.CoordinatorConfig(rounds=1, clients_per_round=2, stage_deadline=0)
    assert transport.CoordinatorConfig(rounds=1, clients_per_round=8,
                                       over_selection=0.25).sample_size == 10


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("# id token\n1 " + "k" * 20 + "\n2 " + "m" * 20 + "  # second\n")
    table = transport.TokenTable.from_file(path)
    assert len(table) == 2
    table.check(1, "k" * 20)
    with pytest.raises(transport.Rejected, match="client 2 sent a wrong token"):
        table.check(2, "k" * 20)
    path.write_text("1 " + "k" * 20 + "\n1 " + "m" * 20 + "\n")
    with pytest.raises(transport.ConfigError, match="appears twice"):
        transport.TokenTable.from_file(path)


def test_dropped_by_round_unites_the_attempts_of_a_round() -> None:
    recs = (
        transport.RoundRecord(server_round=1, round_id=1, status="completed", sampled=(1, 2)),
        transport.RoundRecord(server_round=2, round_id=2, status="failed", sampled=(1, 2, 3),
                              dropped={"masked_input": (3,), "fit": (2,)}),
        transport.RoundRecord(server_round=2, round_id=3, status="completed", sampled=(1, 4),
                              dropped={"fit": (4,)}),
    )
    summary = transport.RunSummary(backend="plain", rounds_completed=2, log=recs)
    assert summary.dropped_by_round() == {1: [], 2: [2, 3, 4]}


def test_identity_files_round_trip(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from transport._keys import load_identities, load_identity_key, write_identities

    keys = {3: Ed25519PrivateKey.generate(), 9: Ed25519PrivateKey.generate()}
    write_identities(tmp_path / "ids.txt", keys)
    ids = load_identities(tmp_path / "ids.txt")
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ids == {c: k.public_key().public_bytes(*raw) for c, k in keys.items()}
    pem = keys[3].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "k.raw").write_bytes(keys[3].private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption()))
    for name in ("k.pem", "k.raw"):
        assert load_identity_key(tmp_path / name).public_key().public_bytes(*raw) == ids[3]
    (tmp_path / "bad.txt").write_text("3 abcd\n")
    with pytest.raises(transport.ConfigError, match="32 bytes"):
        load_identities(tmp_path / "bad.txt")
    (tmp_path / "junk").write_bytes(b"x" * 10)
    with pytest.raises(transport.ConfigError, match="neither a PEM"):
        load_identity_key(tmp_path / "junk")


def test_keys_command_writes_files_the_loaders_read(tmp_path: Path) -> None:
    from transport._keys import load_identities, load_identity_key
    from transport.cli import main

    assert main(["keys", "identities", "--ids", "0-2,5", "--out", str(tmp_path)]) == 0
    assert main(["keys", "tokens", "--ids", "0-2,5", "--out", str(tmp_path)]) == 0
    ids = load_identities(tmp_path / "identities.txt")
    assert sorted(ids) == [0, 1, 2, 5]
    key = load_identity_key(tmp_path / "identity5.pem")
    from cryptography.hazmat.primitives import serialization

    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.public_key().public_bytes(*raw) == ids[5]
    assert (tmp_path / "identity5.pem").stat().st_mode & 0o077 == 0
    table = transport.TokenTable.from_file(tmp_path / "tokens.txt")
    table.check(2, (tmp_path / "token2").read_text().strip())
    assert main(["keys", "tokens", "--ids", "1", "--out", str(tmp_path)]) == 2  # no overwrite


def test_a_batch_of_answers_stops_at_the_first_refusal() -> None:
    from transport._round import _receive_until_fault

    class Session:
        done = False

        def __init__(self) -> None:
            self.got: list[int] = []

        def receive(self, cid: int, message: object) -> None:
            self.got.append(cid)

    good = secagg.encode(PlainUpdate(round_id=1, vector=np.zeros(2), weight=1.0))
    session = Session()
    run = [(1, good), (2, b"BS\x01"), (3, good)]
    taken, fault = _receive_until_fault(session, run)  # type: ignore[arg-type]
    assert taken == 2 and session.got == [1]
    assert fault is not None and fault[0] == 2 and "bad magic" in fault[1].reason
    assert _receive_until_fault(session, run[taken:]) == (1, None)  # type: ignore[arg-type]
    assert session.got == [1, 3]
    session.done = True
    assert _receive_until_fault(session, run) == (3, None)  # type: ignore[arg-type]
    assert session.got == [1, 3]  # nothing after the session finished
