"""The Opacus example at small size (skipped without torch and opacus)."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("opacus")
pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pytorch_opacus" / "run.py"


def test_opacus_example_reports_both_epsilons():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "3", "--rounds", "2", "--neighbours", "2",
         "--client-noise", "1.0", "--dropout", "0", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["rounds"] == 2 and summary["delta"] == 1e-5
    assert 0 < summary["sample_epsilon"] < 100
    assert 0 < summary["client_epsilon"] < 100
    assert 0.0 <= summary["accuracy"] <= 1.0
