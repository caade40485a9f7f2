"""``blindsum dp account | calibrate | plan`` through the real front door."""

from __future__ import annotations

import json

import pytest

import dp
from transport.cli import main

MNIST = ["--sample-rate", str(256 / 60000), "--delta", "1e-5"]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_account_json_rdp(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["dp", "account", "--noise-multiplier", "1.12", "--steps", "14062",
                         *MNIST, "--json"])
    assert out["accountant"] == "rdp" and out["delta"] == 1e-5
    assert out["epsilon"] == pytest.approx(2.52, abs=0.005)
    assert out["order"] in dp.DEFAULT_ORDERS


def test_account_json_pld_and_fixed(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["dp", "account", "--noise-multiplier", "1.12", "--steps", "2000",
                         *MNIST, "--accountant", "pld", "--json"])
    assert out["accountant"] == "pld" and "order" not in out
    fixed = _json(capsys, ["dp", "account", "--noise-multiplier", "1.0", "--sample-rate",
                           "0.01", "--steps", "100", "--delta", "1e-5", "--sampling", "fixed",
                           "--population", "1000", "--json"])
    want = dp.RdpAccountant().compose(dp.SampledWithoutReplacement(
        population_size=1000, sample_size=10, event=dp.Gaussian(noise_multiplier=1.0)), 100)
    assert fixed["epsilon"] == pytest.approx(want.get_epsilon(1e-5))


def test_account_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dp", "account", "--noise-multiplier", "1.0", "--sample-rate", "0.01",
                 "--steps", "10", "--delta", "1e-5"]) == 0
    assert "epsilon = " in capsys.readouterr().out


def test_calibrate_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["dp", "calibrate", "--target-epsilon", "2", "--steps", "14062",
                         *MNIST, "--json"])
    assert out["epsilon"] <= 2.0
    assert 1.2 < out["noise_multiplier"] < 1.4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dp", "account", "--noise-multiplier", "1", "--sample-rate", "1.5", "--steps", "3",
          "--delta", "1e-5"], "sample_rate must be in (0, 1]"),
        (["dp", "account", "--noise-multiplier", "1", "--sample-rate", "0", "--steps", "3",
          "--delta", "1e-5"], "sample_rate must be in (0, 1]"),
        (["dp", "account", "--noise-multiplier", "-1", "--sample-rate", "0.1", "--steps", "3",
          "--delta", "1e-5"], "noise_multiplier"),
        (["dp", "calibrate", "--target-epsilon", "0", "--sample-rate", "0.1", "--steps", "3",
          "--delta", "1e-5"], "target_epsilon"),
        (["dp", "account", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "3",
          "--delta", "1e-5", "--sampling", "fixed", "--population", "100",
          "--accountant", "pld"], "does not support"),
    ],
)
def test_errors_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_plan_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["dp", "plan", "--noise-multiplier", "1.1", "--sample-rate", "0.01",
                         "--delta", "1e-5", "--rounds", "300", "--points", "4",
                         "--target-epsilon", "1.5", "--json"])
    assert out["rounds"][-1] == 300 and out["rounds"][0] == 1
    assert len(out["rdp"]) == len(out["pld"]) == len(out["rounds"])
    assert all(p <= r for p, r in zip(out["pld"], out["rdp"], strict=True))
    assert main(["dp", "plan", "--noise-multiplier", "1.1", "--sample-rate", "0.01",
                 "--delta", "1e-5", "--rounds", "50", "--points", "3", "--sampling", "fixed",
                 "--population", "1000"]) == 0
    text = capsys.readouterr().out
    assert "n/a" in text and "RDP" in text


def test_plan_plot(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "plan.png"
    argv = ["dp", "plan", "--noise-multiplier", "1.1", "--sample-rate", "0.01", "--delta",
            "1e-5", "--rounds", "20", "--points", "2", "--output", str(png)]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(argv) == 2
        assert "matplotlib" in capsys.readouterr().err
        return
    assert main(argv) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fixed_sampling_as_the_issue_spells_it_needs_no_population(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 3: ``--sampling fixed`` with only ``--sample-rate Q``: the fraction Q exactly."""
    out = _json(capsys, ["dp", "account", "--noise-multiplier", "1.0", "--sample-rate", "0.01",
                         "--steps", "100", "--delta", "1e-5", "--sampling", "fixed", "--json"])
    want = dp.RdpAccountant().compose(dp.SampledWithoutReplacement(
        population_size=1000, sample_size=10, event=dp.Gaussian(noise_multiplier=1.0)), 100)
    assert out["epsilon"] == pytest.approx(want.get_epsilon(1e-5), rel=1e-12)
    cal = _json(capsys, ["dp", "calibrate", "--target-epsilon", "2", "--sample-rate", "0.01",
                         "--steps", "100", "--delta", "1e-5", "--sampling", "fixed", "--json"])
    assert 0 < cal["epsilon"] <= 2.0
    assert main(["dp", "plan", "--noise-multiplier", "1", "--sample-rate", "0.01",
                 "--delta", "1e-5", "--steps", "20", "--points", "3", "--sampling", "fixed"]) == 0
