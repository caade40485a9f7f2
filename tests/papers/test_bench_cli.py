"""`blindsum bench --quick`: the issue's one command that reruns every reproduction."""

from __future__ import annotations

from transport.cli import main


def test_bench_quick_lists_every_reproduction(capsys) -> None:
    assert main(["bench", "--quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("bonawitz2017", "bell2020", "abadi2016", "kairouz2021", "flower_baseline"):
        assert name in out
    assert out.count("--quick") == 4  # abadi2016 has no quick mode: its full run takes seconds


def test_bench_can_leave_flower_out(capsys) -> None:
    assert main(["bench", "--quick", "--dry-run", "--skip-flower"]) == 0
    assert "flower_baseline" not in capsys.readouterr().out


def test_bench_fails_loudly_when_a_dependency_is_missing(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FLWR_PYTHON", str(tmp_path / "no-such-venv" / "python"))
    assert main(["bench", "--quick", "--only", "flower_baseline"]) == 2
    captured = capsys.readouterr()
    assert "failed: flower_baseline" in captured.err
