"""ClientPolicy: a client refuses a weaker round than it accepts, and the round goes on
without it; the defaults refuse nothing a legitimate round can hold."""

import dataclasses
import tracemalloc

import numpy as np
import pytest
from roundkit import expected_words, make_round, run

import secagg
from secagg import _messages as m
from secagg._policy import ClientPolicy

N, DIM = 8, 3  # complete graph: k = 7, and make_round's t = 8 // 2 + 1 = 5


def _weakened(config: m.RoundConfig, **changes: int) -> m.RoundConfig:
    return dataclasses.replace(config, **changes)


# (policy of client 0, what the server hands client 0 instead, authenticated, refusal)
WEAKER = {
    "low threshold": (ClientPolicy(min_threshold=4), dict(threshold=2), False,
                      "threshold 2 is below min_threshold 4"),
    "low threshold fraction": (ClientPolicy(min_threshold_fraction=0.5), dict(threshold=3), False,
                               r"t / \(k \+ 1\) = 3 / 8 = 0.375 is below min_threshold_fraction 0.5"),
    "few neighbours": (ClientPolicy(min_neighbours=6), dict(neighbours=2, threshold=2), False,
                       "neighbours 2 is below min_neighbours 6"),
    "huge degree": (ClientPolicy(max_neighbours=1000),
                    dict(num_clients=10**6, neighbours=10**6 - 1, threshold=500_001), False,
                    "neighbours 999999 is above max_neighbours 1000"),
    "equivocation": (ClientPolicy(colluding_neighbours=1), dict(threshold=4), True,
                     r"2t - \(k \+ 1\) = 0 \(t = 4, k = 7\) does not exceed colluding_neighbours 1"),
}


def _round_goes_on_without_client_0(server, clients, requests, xs, ws) -> None:
    server.drop(0)  # what the coordinator does with a client that aborts
    for cid in range(1, N):
        server.receive(cid, clients[cid].receive(requests[cid]))
    run(server, clients)
    assert server.stage == "done" and server.survivors == tuple(range(1, N))
    np.testing.assert_array_equal(server.result_words(),
                                  expected_words(server.config, xs, ws, server.survivors))


@pytest.mark.parametrize("case", list(WEAKER))
def test_a_weaker_configuration_handed_to_one_client_is_refused_and_the_round_goes_on(case):
    policy, changes, authenticated, refusal = WEAKER[case]
    server, clients, xs, ws = make_round(N, DIM, authenticated=authenticated, policies={0: policy})
    assert policy.refusal(server.config) is None  # the honest round is within the policy
    weak = _weakened(server.config, **changes)
    assert ClientPolicy().refusal(weak) is None  # consistent: only the policy refuses it
    requests = server.next_messages()
    with pytest.raises(secagg.RemoteProtocolError, match=refusal) as info:
        clients[0].receive(m.AdvertiseRequest(config=weak))
    assert info.value.peer == "server" and "client 0 refuses" in str(info.value)
    assert clients[0].stage is secagg.ClientStage.ERROR
    _round_goes_on_without_client_0(server, clients, requests, xs, ws)


def test_too_few_forwarded_neighbours_are_refused_at_share_keys_and_the_round_goes_on():
    # the round's k = 7 passes min_neighbours = 5, but the server forwards client 0 only
    # t - 1 = 2 neighbours (consistent with t = 3), isolating it among few peers
    policy = ClientPolicy(min_neighbours=5)
    server, clients, xs, ws = make_round(N, DIM, t=3, policies={0: policy})
    for cid, msg in sorted(server.next_messages().items()):
        server.receive(cid, clients[cid].receive(msg))
    requests = server.next_messages()
    req = requests[0]
    few = m.ShareKeysRequest(round_id=req.round_id, neighbour_ids=req.neighbour_ids[:2].copy(),
                             encryption_keys=req.encryption_keys[:2 * m.KEY_BYTES],
                             mask_keys=req.mask_keys[:2 * m.KEY_BYTES])
    with pytest.raises(secagg.RemoteProtocolError,
                       match="the server forwards 2 neighbours, below min_neighbours 5"):
        clients[0].receive(few)
    _round_goes_on_without_client_0(server, clients, requests, xs, ws)


def test_equivocation_bound_needs_an_authenticated_round():
    policy = ClientPolicy(colluding_neighbours=0)
    server, *_ = make_round(N, DIM)
    assert "needs an authenticated round" in policy.refusal(server.config)
    with pytest.raises(ValueError, match="colluding_neighbours .* identity key"):
        secagg.SecAggPlusClient(client_id=0, vector=np.zeros(DIM), weight=1,
                                rng=np.random.default_rng(0), policy=policy)
    with pytest.raises(ValueError, match="colluding_neighbours .* identity key"):
        secagg.SecAggPlusBackend(neighbours="all").client_session(
            client_id=0, vector=np.zeros(DIM), weight=1, rng=np.random.default_rng(0),
            policy=policy)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(min_threshold=1), ValueError, "min_threshold must be >= 2, got 1"),
    (dict(min_threshold=2.5), TypeError, "min_threshold must be an integer"),
    (dict(min_neighbours=0), ValueError, "min_neighbours must be >= 1, got 0"),
    (dict(min_neighbours=5, max_neighbours=4), ValueError, "max_neighbours must be >= 5, got 4"),
    (dict(colluding_neighbours=-1), ValueError, "colluding_neighbours must be >= 0, got -1"),
    (dict(min_threshold_fraction=1.5), ValueError, r"min_threshold_fraction must be in \[0, 1\]"),
    (dict(min_threshold_fraction=float("nan")), ValueError, "min_threshold_fraction"),
    (dict(min_threshold_fraction="0.5"), TypeError, "min_threshold_fraction must be a number"),
])
def test_policy_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        ClientPolicy(**kwargs)


def _config(n: int, k: int, t: int, *, authenticated: bool = False) -> m.RoundConfig:
    return m.RoundConfig(round_id=1, num_clients=n, neighbours=k, threshold=t, dim=1, clip=1.0,
                         scale=1.0, modulus_bits=32, max_weight=1, authenticated=authenticated)


_NS = [*range(2, 80), 100, 250, 1000, 3000, 10_000, 30_000, 100_000]
_DROPOUT = (0.0, 0.05, 0.1, 0.3, 0.44, 0.89)
_CORRUPT = (0.0, 0.05, 0.2, 0.5, 0.89)


def _finder_outputs():
    for threat in secagg.ThreatModel:
        for n in _NS:
            for d in _DROPOUT:
                for a in _CORRUPT:
                    try:
                        yield secagg.find_parameters(clients=n, dropout=d, corrupt=a, threat=threat)
                    except secagg.ConfigurationError:
                        continue


def test_the_default_policy_accepts_every_finder_output_and_complete_graph():
    default, seen = ClientPolicy(), 0
    strict = ClientPolicy(colluding_neighbours=0, min_threshold_fraction=0.5)  # docs/transport.md
    for p in _finder_outputs():
        k, t = p.neighbours, p.threshold
        for authenticated in (False, True):
            assert default.refusal(_config(p.clients, k, t, authenticated=authenticated)) is None, p
        for forwarded in (t - 1, k):  # as few as t - 1 when neighbours dropped before share keys
            assert default.neighbours_refusal(max(forwarded, 1)) is None, p
        if p.threat is secagg.ThreatModel.SEMI_MALICIOUS:  # the documented stricter setting
            assert strict.refusal(_config(p.clients, k, t, authenticated=True)) is None, p
        seen += 1
    assert seen > 1500
    for n in range(2, 60):  # the backend's complete graph, t = max(2, ceil(n (1 - dropout)))
        for d in (0.0, 0.1, 0.5, 0.9, 0.99):
            k, t = secagg.SecAggPlusBackend(neighbours="all", dropout=d).graph_parameters(n)
            assert default.refusal(_config(n, k, t)) is None, (n, d)


def test_a_huge_dimension_is_refused_before_anything_is_allocated():
    """Not the policy's doing: the client refuses any dim but its update's length, which is
    why ClientPolicy has no dimension bound (this pins that reason)."""
    server, clients, *_ = make_round(4, DIM)
    huge = _weakened(server.config, dim=10**12)
    tracemalloc.start()
    try:
        with pytest.raises(secagg.RemoteProtocolError, match="round dimension 1000000000000"):
            clients[0].receive(m.AdvertiseRequest(config=huge))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# docs/transport.md, "Bounding the round's parameters": its suggested client settings for
# rounds of 100 to 100,000 clients accept every round the finder gives them
DOCUMENTED = {
    "semi-honest": ClientPolicy(min_threshold=6, min_threshold_fraction=0.35, min_neighbours=8,
                                max_neighbours=100),
    "semi-malicious": ClientPolicy(min_threshold=16, min_threshold_fraction=0.5, min_neighbours=13,
                                   max_neighbours=200, colluding_neighbours=4),
}


@pytest.mark.parametrize("threat", list(DOCUMENTED))
def test_the_documented_stricter_settings_accept_the_deployments_they_are_for(threat):
    policy = DOCUMENTED[threat]
    for n in [*range(100, 1000, 50), *range(1000, 100_001, 3300), 100_000]:
        p = secagg.find_parameters(clients=n, dropout=0.1, corrupt=0.05, threat=threat)
        config = _config(n, p.neighbours, p.threshold, authenticated=threat == "semi-malicious")
        assert policy.refusal(config) is None, p
        assert policy.neighbours_refusal(p.neighbours) is None, p
