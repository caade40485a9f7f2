"""examples/quickstart/run.py (what `make demo` runs), as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "quickstart" / "run.py"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], text=True, capture_output=True,
                          env=env, cwd=ROOT, timeout=timeout)


@pytest.mark.slow
def test_demo_kills_three_clients_in_round_two_and_ends_with_the_json_summary() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rounds_completed"] == 3 and summary["clients"] == 10
    assert summary["backend"] == "secagg+"
    assert set(summary["dropped"]) == {"1", "2", "3"}
    assert len(summary["killed"]) == 3 and summary["dropped"]["2"] == summary["killed"]
    assert summary["dropped"]["1"] == [] and summary["dropped"]["3"] == []


def test_a_kill_that_leaves_too_few_clients_is_refused_up_front() -> None:
    """Killing 3 of 5 left 2 clients for rounds that need 3: the demo waited forever."""
    proc = run("--clients", "5", timeout=30)
    assert proc.returncode == 2
    assert "--kill 3 of --clients 5 leaves 2, fewer than the 3 a round needs" in proc.stderr
