"""The reproductions under papers/ run end to end at a tiny size (seconds), so CI catches a
broken script. Full sizes are benchmarks, run by hand (see papers/README.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from papers import _common  # noqa: E402
from papers.bell2020 import reproduce as bell  # noqa: E402
from papers.bonawitz2017 import reproduce as bonawitz  # noqa: E402

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_bonawitz_quick_tiny(tmp_path: Path) -> None:
    code = bonawitz.main(["--quick", "--clients", "12", "--dim", "64", "--dropouts", "0", "0.25",
                          "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    data = json.loads((tmp_path / "results_quick.json").read_text())
    assert data["hardware_software"]["packages"]["numpy"]
    rows = data["rows"]
    assert [r["dropped"] for r in rows] == [0, 3]
    for r in rows:
        assert r["neighbours"] == 11
        assert r["max_abs_error"] < 1e-3
        assert r["keystream_bound_s"] > 0 and r["server_over_bound"] > 0
    # one self mask per survivor, plus one pairwise mask per (dropped, survivor) pair
    assert rows[1]["keystream_gb"] * 1e9 == (9 + 3 * 9) * 4 * 65
    assert "| n | d |" in (tmp_path / "results_quick.md").read_text()


def test_bell_quick_tiny(tmp_path: Path) -> None:
    args = ["--quick", "--clients", "100", "--dim", "32", "--dropouts", "0.05",
            "--complete-up-to", "100", "--out", str(tmp_path), "--no-progress"]
    if not HAS_MATPLOTLIB:
        args.append("--no-plot")
    assert bell.main(args) == 0
    data = json.loads((tmp_path / "results_quick.json").read_text())
    graphs = {r["graph"]: r for r in data["rows"]}
    assert set(graphs) == {"secagg+", "complete"}
    assert graphs["secagg+"]["neighbours"] < graphs["complete"]["neighbours"] == 99
    assert graphs["secagg+"]["up_per_client"] < graphs["complete"]["up_per_client"]
    assert any("3%" in claim for claim in data["claims"])
    if HAS_MATPLOTLIB:
        assert (tmp_path / "results_quick_client_cost.png").stat().st_size > 0


def test_missing_dependency_fails_loudly() -> None:
    with pytest.raises(_common.MissingDependency, match="pip install"):
        _common.require("no_such_module_blindsum", extra="plot")


def test_flower_baseline_fails_loudly_without_its_venv(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "papers/flower_baseline/reproduce.py"), "--quick",
                           "--flwr-python", str(tmp_path / "nope/python")],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2
    assert "Flower's virtual environment is missing" in proc.stderr


def test_flower_baseline_banner_names_flwr_from_its_own_venv(tmp_path: Path) -> None:
    # A stand-in for .venv-flwr's Python: this interpreter with a fake flwr on its path.
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "__init__.py").write_text('__version__ = "9.8.7"\n')
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nPYTHONPATH="{tmp_path}" exec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    from papers.flower_baseline import reproduce as flower

    info = flower.flower_banner(str(fake))
    assert info["packages"]["flwr"] == "9.8.7"  # not "not installed": blindsum's venv never has flwr
    assert "flwr 9.8.7" in _common.banner_text(info)


def test_flower_baseline_sparse_cases_cannot_halt_on_dropouts() -> None:
    # Flower orders its SecAgg+ ring by an unseeded client sample and halts the round when
    # any client's k + 1 share holders keep fewer than t survivors; the quick cases (run by
    # `make papers`) must complete whatever that order is.
    from papers.flower_baseline import reproduce as flower

    for case in flower.QUICK:
        if case.neighbours is not None:
            k, t = case.blindsum_kt()
            assert isinstance(k, int)
            assert (k + 1) - round(case.dropout * case.clients) >= t, case


def test_abadi_states_hardware_and_writes_its_table(tmp_path: Path) -> None:
    from papers.abadi2016 import reproduce as abadi

    assert abadi.main(["--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["hardware_software"]["cpu"] and data["hardware_software"]["packages"]["numpy"]
    rows = data["rows"]
    assert len(rows) == 6
    for r in rows:  # every published epsilon to its printed digits (classic RDP conversion)
        assert abs(r["rdp_classic"] - r["published"]) < 0.006
    assert "| 1.26 | 1.259 |" in (tmp_path / "results.md").read_text()


def test_papers_readme_table_gives_figures_for_every_reproduction() -> None:
    text = (REPO / "papers" / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert len(rows) >= 5
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        paper, what, ours, published, command = cells
        assert ours and published and "see its README" not in ours + published, paper
        assert "python" in command, paper
