"""The `blindsum simulate` contract: flags and JSON fields as the issue spells them."""

import json

import pytest

from transport.cli import main

FIELDS = ("clients", "dim", "dropped", "survivors", "neighbours", "threshold", "max_abs_error",
          "seconds", "bytes")


def _run(capsys, *argv):
    assert main(["simulate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_json_contract(capsys):
    out = _run(capsys, "--clients", "100", "--dim", "200", "--dropout", "0.1", "--drop-stage", "masked",
               "--seed", "3")
    for field in FIELDS:
        assert field in out
    for field in ("server", "client_mean", "total"):
        assert out["seconds"][field] >= 0
    for field in ("up_per_client", "down_per_client"):
        assert out["bytes"][field] > 0
    assert out["clients"] == 100 and out["dim"] == 200
    assert out["dropped"] == 10 and out["survivors"] == 90
    assert out["max_abs_error"] < 1e-3


@pytest.mark.parametrize("stage", ["advertise", "share", "masked", "unmask"])
def test_simulate_complete_graph_with_dropout_at_each_stage(capsys, stage):
    out = _run(capsys, "--clients", "12", "--dim", "30", "--dropout", "0.25", "--drop-stage", stage,
               "--neighbours", "all")
    assert out["neighbours"] == 11
    assert out["threshold"] == 9  # ceil(12 * (1 - 0.25)): Google's rule for the complete graph
    assert out["max_abs_error"] < 1e-6


def test_simulate_explicit_k_and_t(capsys):
    out = _run(capsys, "--clients", "30", "--dim", "10", "--neighbours", "8", "--threshold", "4")
    assert (out["neighbours"], out["threshold"]) == (8, 4)


def test_simulate_ckks(capsys):
    pytest.importorskip("tenseal")
    out = _run(capsys, "--backend", "ckks", "--clients", "10", "--dim", "50", "--dropout", "0.2")
    assert out["backend"] == "ckks" and out["dropped"] == 2
    assert out["max_abs_error"] < 1e-6


def test_simulate_refuses_impossible_requests(capsys):
    assert main(["simulate", "--clients", "10", "--dim", "5", "--neighbours", "3"]) == 2
    assert "even" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--clients", "10", "--dim", "5", "--dropout", "1.5"])


@pytest.mark.parametrize("backend", ["secagg+", "ckks", "dp"])
def test_simulate_reports_a_failed_round_as_a_named_error(capsys, backend):
    # More dropouts than the threshold (SecAgg+) or min_contributors (CKKS) allows: the
    # round fails and the command says why, with exit code 2 (not a traceback).
    if backend == "ckks":
        pytest.importorskip("tenseal")
        argv = ["--backend", "ckks", "--clients", "3", "--dropout", "0.6"]
    elif backend == "dp":
        argv = ["--dp", "dgauss", "--clients", "10", "--dropout", "0.2", "--threshold", "9"]
    else:
        argv = ["--clients", "10", "--dropout", "0.3", "--neighbours", "all", "--threshold", "9"]
    assert main(["simulate", *argv, "--dim", "10", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "blindsum simulate: error: the round failed" in captured.err
