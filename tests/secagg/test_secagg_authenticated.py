"""Authenticated SecAgg+: signed keys and the consistency check against a malicious server."""

import dataclasses

import numpy as np
import pytest
from roundkit import expected_words, make_round, run, step

import secagg
from secagg import _messages as m

STAGES = ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmask"]


@pytest.mark.parametrize("stage", STAGES)
def test_exact_sum_with_dropouts_at_each_stage(stage):
    server, clients, xs, ws = make_round(10, 6, k=6, t=3, seed=9, authenticated=True)
    run(server, clients, {2: stage, 7: stage})
    assert server.stage == "done"
    np.testing.assert_array_equal(server.result_words(),
                                  expected_words(server.config, xs, ws, server.survivors, seed=9))


def test_server_substituting_a_neighbours_key_is_caught():
    server, clients, *_ = make_round(5, 3, t=2, authenticated=True)
    step(server, clients, until="share_keys")
    req = server.next_messages()[0]
    enc = bytearray(req.encryption_keys)
    enc[0] ^= 1  # the server swaps in a key of its own for the first neighbour
    forged = dataclasses.replace(req, encryption_keys=bytes(enc))
    with pytest.raises(secagg.RemoteProtocolError, match="not signed"):
        clients[0].receive(forged)


def test_equivocation_about_who_dropped_is_refused():
    server, clients, *_ = make_round(6, 3, t=2, authenticated=True)
    step(server, clients, until="unmask")
    reqs = server.next_messages()
    req = reqs[0]
    victim = int(req.survivors[0])
    # tell client 0 that a signed survivor dropped: its mask-key share would unmask the victim
    lie = dataclasses.replace(req, survivors=req.survivors[1:].copy(),
                              dropped=m.ids(sorted([*req.dropped.tolist(), victim])))
    with pytest.raises(secagg.RemoteProtocolError, match="signed survivor set"):
        clients[0].receive(lie)


def test_too_few_signatures_is_refused():
    server, clients, *_ = make_round(6, 3, t=4, authenticated=True)
    step(server, clients, until="unmask")
    req = server.next_messages()[1]
    starved = dataclasses.replace(req, signers=req.signers[:1].copy(), signatures=req.signatures[:64])
    with pytest.raises(secagg.RemoteProtocolError, match="signed the survivor set"):
        clients[1].receive(starved)


def test_client_with_identity_refuses_a_downgraded_round():
    server, clients, *_ = make_round(4, 3, authenticated=True)
    req = server.next_messages()[0]
    downgraded = m.AdvertiseRequest(config=dataclasses.replace(req.config, authenticated=False))
    with pytest.raises(secagg.RemoteProtocolError, match="only joins authenticated"):
        clients[0].receive(downgraded)


def test_bad_advertised_signature_drops_that_client_only():
    server, clients, xs, ws = make_round(5, 3, t=2, authenticated=True, seed=4)
    replies = {c: clients[c].receive(msg) for c, msg in server.next_messages().items()}
    replies[3] = dataclasses.replace(replies[3], signature=bytes(64))
    for c in sorted(replies):
        if c == 3:
            with pytest.raises(secagg.RemoteProtocolError, match="not signed") as info:
                server.receive(c, replies[c])
            assert info.value.peer == 3
        else:
            server.receive(c, replies[c])
    run(server, clients)
    assert 3 not in server.survivors
    np.testing.assert_array_equal(server.result_words(),
                                  expected_words(server.config, xs, ws, server.survivors, seed=4))


def test_simulate_authenticated():
    out = secagg.simulate(clients=12, dim=50, authenticated=True,
                          dropouts={1: "consistency", 4: "masked"}, seed=3)
    assert out.max_abs_error < 1e-6 and len(out.survivors) == 11
