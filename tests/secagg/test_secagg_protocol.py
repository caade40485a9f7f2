"""SecAgg+ end to end: exact agreement with the plain sum for every allowed dropout set."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roundkit import expected_words, make_round, run

import secagg

STAGES = ["advertise_keys", "share_keys", "masked_input", "unmask"]


@pytest.mark.parametrize("stage", STAGES)
def test_exact_integer_sum_with_dropouts_at_each_stage(stage):
    server, clients, xs, ws = make_round(12, 17, k=6, t=3, seed=3)
    run(server, clients, {1: stage, 5: stage, 8: stage})
    survivors = server.survivors
    assert set(survivors) == set(range(12)) - ({1, 5, 8} if stage != "unmask" else set())
    want = expected_words(server.config, xs, ws, survivors, seed=3)
    np.testing.assert_array_equal(server.result_words(), want)
    res = server.result()
    assert res.total_weight == len(survivors)
    np.testing.assert_allclose(res.weighted_sum, xs[list(survivors)].sum(axis=0),
                               atol=len(survivors) / server.config.scale)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_dropout_set_the_threshold_allows(data):
    n = data.draw(st.integers(3, 11), label="n")
    k = data.draw(st.sampled_from([2, 4, 6, "all"]), label="k")
    degree = n - 1 if k == "all" else min(k, n - 1)
    t = data.draw(st.integers(2, degree + 1), label="t")
    bits = data.draw(st.sampled_from([16, 20, 32, 64]), label="bits")
    drops = data.draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from(STAGES), max_size=n),
                      label="drops")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    server, clients, xs, ws = make_round(n, 5, k=k, t=t, seed=seed, modulus_bits=bits)
    run(server, clients, drops)
    if server.failure is not None:
        # the error says which secrets lacked shares (or that too few clients advertised)
        assert any(w in str(server.failure) for w in ("shares", "advertised", "share-keys"))
        with pytest.raises(secagg.RecoveryError):
            server.result()
        return
    want = expected_words(server.config, xs, ws, server.survivors, seed=seed)
    np.testing.assert_array_equal(server.result_words(), want)
    assert set(server.survivors) >= {c for c in range(n) if c not in drops} - set(server.dropped_at)


def test_weighted_mean_and_weight_coordinate():
    ws = np.array([1, 3, 5, 2, 4, 1])
    server, clients, xs, _ = make_round(6, 9, seed=5, max_weight=5, weights=ws)
    run(server, clients, {4: "masked_input"})
    res = server.result()
    keep = [0, 1, 2, 3, 5]
    assert res.total_weight == ws[keep].sum()
    np.testing.assert_allclose(res.mean, (ws[keep, None] * xs[keep]).sum(0) / ws[keep].sum(), atol=1e-6)


def test_simulate_reports_error_bytes_and_timings():
    out = secagg.simulate(clients=100, dim=1000, dropouts=secagg.dropout_schedule(
        100, 0.1, "masked", np.random.default_rng(0)), seed=2)
    assert out.max_abs_error < 1e-3
    assert len(out.dropped) == 10 and len(out.survivors) == 90
    assert out.bytes["up_per_client"] > 4 * 1000  # at least the masked words
    assert out.seconds["server"] > 0 and out.seconds["client_mean"] > 0
    d = out.to_dict()
    # k and t come from the parameter finder (n = 100, 10% dropout, 5% corrupt)
    assert d["dropped"] == 10 and d["survivors"] == 90
    assert (d["neighbours"], d["threshold"]) == (16, 6)


def test_simulate_times_surviving_clients_apart():
    # half the clients vanish at advertise: the all-client mean counts their near-zero work,
    # the survivors' mean is the cost of a client that ran the whole round
    out = secagg.simulate(clients=20, dim=20000, backend=secagg.SecAggPlusBackend(neighbours="all", threshold=10),
                          dropouts=dict.fromkeys(range(10), "advertise"), seed=1)
    assert len(out.survivors) == 10
    assert out.seconds["client_mean_survivors"] > out.seconds["client_mean"] > 0


def test_unrecoverable_round_says_which_secrets_lack_shares():
    server, clients, *_ = make_round(8, 3, k=2, t=2, seed=1)
    # with k = 2, a client whose two neighbours both vanish at unmask cannot be unmasked
    run(server, clients, {c: "unmask" for c in range(0, 8, 2)} | {c: "masked_input" for c in (1,)})
    assert isinstance(server.failure, secagg.RecoveryError)
    assert server.failure.missing
    assert all(have < need for have, need in server.failure.missing.values())


def test_too_few_advertisers_fails_with_reason():
    server, clients, *_ = make_round(4, 3, t=3)
    run(server, clients, {0: "advertise_keys", 1: "advertise_keys"})
    assert server.stage == "failed"
    assert "advertised" in str(server.failure)


def test_words_encoding_sums_modulo_the_modulus():
    rng = np.random.default_rng(11)
    words = rng.integers(0, 1 << 12, size=(7, 20), dtype=np.uint32)
    backend = secagg.SecAggPlusBackend(encoding="words", modulus_bits=12, neighbours="all", threshold=3)
    out = secagg.simulate(clients=7, dim=20, backend=backend, inputs=words, seed=1,
                          dropouts={3: "masked"})
    keep = [c for c in range(7) if c != 3]
    np.testing.assert_array_equal(out.aggregate, words[keep].sum(axis=0) % (1 << 12))
    assert out.max_abs_error == 0
    assert out.total_weight == 6


def test_words_that_do_not_fit_are_refused():
    backend = secagg.SecAggPlusBackend(encoding="words", modulus_bits=8)
    server = backend.server_session(round_id=1, client_ids=(0, 1, 2), dim=2, rng=np.random.default_rng())
    client = backend.client_session(client_id=0, vector=np.array([1, 300], dtype=np.uint32), weight=1,
                                    rng=np.random.default_rng())
    with pytest.raises(secagg.RemoteProtocolError, match="8 bits"):
        client.receive(server.next_messages()[0])


def test_params_cli_reproduces_published_parameters(capsys):
    import json

    from transport.cli import main

    for clients, dropout, corrupt, k in [(1000, 0.05, 0.05, 30), (1000, 0.33, 0.33, 286)]:
        assert main(["params", "--clients", str(clients), "--dropout", str(dropout),
                     "--corrupt", str(corrupt), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["neighbours"] == k and 2 <= out["threshold"] <= k + 1
    assert main(["params", "--clients", "100", "--dropout", "0.5", "--corrupt", "0.5"]) == 2
    assert "corrupt + dropout" in capsys.readouterr().err
