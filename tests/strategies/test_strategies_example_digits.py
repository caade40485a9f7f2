"""The digits example at small size: it runs end to end and its last line is the summary."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "sklearn_digits" / "run.py"


def test_digits_example_small_run_prints_json_summary():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "8", "--rounds", "3", "--neighbours", "7",
         "--target-epsilon", "8", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"accuracy", "epsilon", "delta", "rounds"} <= set(summary)
    assert summary["rounds"] == 3 and summary["delta"] == 1e-5
    assert 0 < summary["epsilon"] <= 8.0
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert summary["backend"] == "secagg+"
