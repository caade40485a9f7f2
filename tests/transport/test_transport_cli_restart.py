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


def test_client_with_unknown_app_names_it() -> None:
    proc = blindsum("client", "--app", f"{APP}:nope", "--id", "1")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "has no attribute 'nope'" in err
