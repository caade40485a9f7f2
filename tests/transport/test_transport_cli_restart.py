"""The commands end to end: a coordinator SIGKILLed after a round resumes from SQLite."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
APP = HERE / "transport_cli_app.py"
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def blindsum(*args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "transport.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT, **kw)  # type: ignore[call-overload]


def completed_rounds(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            row = con.execute("SELECT completed_rounds FROM model WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_sigkilled_coordinator_resumes_from_the_last_completed_round(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    coordinator_args = (
        "coordinator", "--app", f"{APP}:server_app", "--address", f"127.0.0.1:{port}",
        "--rounds", "3", "--clients-per-round", "3", "--min-clients", "2",
        "--wait-for-clients", "20", "--state-dir", str(state), "--json", "--seed", "3")
    first = blindsum(*coordinator_args)
    clients = [blindsum("client", "--app", f"{APP}:client_app", "--address",
                        f"127.0.0.1:{port}", "--id", str(c), "--json",
                        "--give-up-after", "60") for c in range(3)]
    try:
        db = state / "coordinator.sqlite"
        deadline = time.monotonic() + 60
        while completed_rounds(db) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert completed_rounds(db) == 1, first.stderr.read() if first.poll() else "timeout"
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = blindsum(*coordinator_args)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["rounds_completed"] == 3 and summary["backend"] == "plain"
        done = [r for r in summary["rounds"] if r["status"] == "completed"]
        assert [r["server_round"] for r in done] == [1, 2, 3]
        assert "resuming after round 1" in err
        import numpy as np

        import transport

        checkpoint = transport.Store(state).load()
        assert checkpoint is not None and checkpoint.completed_rounds == 3
        np.testing.assert_allclose(checkpoint.parameters[0], 0.75)  # 3 rounds x 0.25
        for c in clients:
            c_out, c_err = c.communicate(timeout=30)
            assert c.returncode == 0, c_err
            assert json.loads(c_out.strip().splitlines()[-1])["connections"] >= 2
    finally:
        for p in (first, *clients):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_coordinator_refuses_plaintext_beyond_loopback(tmp_path: Path) -> None:
    proc = blindsum("coordinator", "--app", f"{APP}:server_app", "--address",
                    f"0.0.0.0:{free_port()}", "--rounds", "1", "--clients-per-round", "2")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "needs TLS" in err
    assert "--tls-cert, --tls-key" in err and "--allow-insecure" in err  # the flags to use


def test_client_with_unknown_app_names_it() -> None:
    proc = blindsum("client", "--app", f"{APP}:nope", "--id", "1")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "has no attribute 'nope'" in err


def test_commands_with_tls_and_tokens(tmp_path: Path) -> None:
    import transport_testkit as kit

    pki = kit.make_pki()
    files = {"ca.pem": pki.ca, "server.pem": pki.server_cert, "server.key": pki.server_key}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    tokens = {0: "t0-" + "a" * 20, 1: "t1-" + "b" * 20}
    (tmp_path / "tokens.txt").write_text("".join(f"{c} {t}\n" for c, t in tokens.items()))
    for c, t in tokens.items():
        (tmp_path / f"token{c}").write_text(t + "\n")
    (tmp_path / "wrong").write_text("nope-" + "c" * 20)
    port = free_port()
    coordinator = blindsum(
        "coordinator", "--app", f"{APP}:server_app", "--address", f"127.0.0.1:{port}",
        "--rounds", "1", "--clients-per-round", "2", "--json",
        "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"),
        "--tokens", str(tmp_path / "tokens.txt"))
    common = ("--app", f"{APP}:client_app", "--address", f"127.0.0.1:{port}",
              "--root-cert", str(tmp_path / "ca.pem"), "--give-up-after", "30")
    intruder = blindsum("client", *common, "--id", "1", "--token-file", str(tmp_path / "wrong"))
    clients = [blindsum("client", *common, "--id", str(c), "--token-file",
                        str(tmp_path / f"token{c}")) for c in tokens]
    try:
        out, err = coordinator.communicate(timeout=60)
        assert coordinator.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["rounds_completed"] == 1
        for c in clients:
            assert c.wait(timeout=30) == 0
        _, ierr = intruder.communicate(timeout=30)
        assert intruder.returncode == 1 and "client 1 sent a wrong token" in ierr
        assert "t0-" not in err and "t1-" not in err  # no token in the coordinator's log
    finally:
        for p in (coordinator, intruder, *clients):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("option", ["--tokens", "--state-dir"])
def test_unreadable_files_are_an_error_not_a_traceback(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transport.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = tmp_path / "missing" if option == "--tokens" else blocker / "state"
    code = main(["coordinator", "--app", f"{APP}:server_app", "--address",
                 f"127.0.0.1:{free_port()}", "--rounds", "1", option, str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("blindsum coordinator: error: ") and str(target.name) in err
