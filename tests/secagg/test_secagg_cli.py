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


def _strict_json(text):
    """Parse as a strict JSON parser (jq, JavaScript) would: no Infinity or NaN."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_params_json_is_strict_json(capsys):
    # n = 100, 5%/5%: k = 12 > the 10 bad clients, so the failure probabilities are exactly 0
    assert main(["params", "--clients", "100", "--dropout", "0.05", "--corrupt", "0.05", "--json"]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert (out["neighbours"], out["threshold"]) == (12, 6)
    assert out["log2_disconnection"] is None  # impossible (log2 0 = -inf) is printed as null


def test_simulate_round_that_cannot_finish_says_why(capsys):
    # 10 of 20 clients drop but every secret needs 6 of its 7 shares: no traceback, a reason
    code = main(["simulate", "--clients", "20", "--dim", "5", "--dropout", "0.5", "--neighbours", "6",
                 "--threshold", "6", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the round failed" in err and "shares" in err and "Traceback" not in err


@pytest.mark.parametrize(("stage", "name"), [("share", "share_keys"), ("unmask", "unmask")])
def test_simulate_reports_who_stopped_answering_at_each_stage(capsys, stage, name):
    out = _run(capsys, "--clients", "20", "--dim", "10", "--dropout", "0.2", "--drop-stage", stage)
    assert out["dropped_by_stage"] == {name: 4}
    # dropouts at unmask leave their inputs in the sum: not "dropped", and the sum still exact
    assert out["dropped"] == (0 if stage == "unmask" else 4)
    assert out["dropped"] + out["survivors"] == 20


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
