"""Malformed, out-of-stage and malicious messages: refused with a named peer, round goes on."""

import dataclasses

import numpy as np
import pytest
from roundkit import expected_words, make_round, run, step

import secagg
from secagg import _messages as m


def _no_shares(owners=(), shares=None):
    o = m.ids(owners)
    s = np.zeros((o.size, m.LIMBS), dtype=np.uint32) if shares is None else shares
    return m.UnmaskShares(round_id=7, self_mask_owners=o, self_mask_shares=s,
                          mask_key_owners=m.ids(()), mask_key_shares=np.zeros((0, m.LIMBS), dtype=np.uint32))


def _answers(server, clients):
    """The replies of every client to the server's current requests."""
    return {cid: clients[cid].receive(msg) for cid, msg in sorted(server.next_messages().items())}


# -- server side ------------------------------------------------------------------

def test_unknown_client_and_duplicate_answer():
    server, clients, *_ = make_round(5, 4)
    replies = _answers(server, clients)
    with pytest.raises(secagg.RemoteProtocolError) as info:
        server.receive(99, replies[0])
    assert info.value.peer == 99
    server.receive(0, replies[0])
    with pytest.raises(secagg.RemoteProtocolError, match="twice|already"):
        server.receive(0, replies[0])
    assert 0 not in server.dropped_at  # a duplicate does not change the state


def test_wrong_message_type_and_round_drop_the_sender_only():
    server, clients, xs, ws = make_round(6, 4, t=3)
    replies = _answers(server, clients)
    with pytest.raises(secagg.RemoteProtocolError) as info:
        server.receive(1, _no_shares())
    assert info.value.peer == 1 and "expected AdvertiseKeys" in str(info.value)
    bad_round = dataclasses.replace(replies[2], round_id=8)
    with pytest.raises(secagg.RemoteProtocolError, match="round 8"):
        server.receive(2, bad_round)
    for cid in (0, 3, 4, 5):
        server.receive(cid, replies[cid])
    run(server, clients)
    assert server.survivors == (0, 3, 4, 5)
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, (0, 3, 4, 5)))


def test_reused_public_key_is_rejected():
    server, clients, *_ = make_round(4, 3)
    replies = _answers(server, clients)
    server.receive(0, replies[0])
    copycat = dataclasses.replace(replies[1], encryption_key=replies[0].encryption_key)
    with pytest.raises(secagg.RemoteProtocolError, match="already in use") as info:
        server.receive(1, copycat)
    assert info.value.peer == 1


@pytest.mark.parametrize("fault", ["dtype", "length", "ndim"])
def test_masked_input_of_wrong_shape_or_dtype(fault):
    server, clients, xs, ws = make_round(6, 5, t=2)
    step(server, clients, until="masked_input")
    replies = _answers(server, clients)
    good = replies[3].masked
    bad = {"dtype": good.astype(np.uint64), "length": good[:-1], "ndim": good}[fault]
    if fault == "ndim":
        with pytest.raises(ValueError, match="one-dimensional"):
            m.MaskedInput(round_id=7, masked=good.reshape(2, 3))
        return
    with pytest.raises(secagg.RemoteProtocolError) as info:
        server.receive(3, m.MaskedInput(round_id=7, masked=bad))
    assert info.value.peer == 3
    for cid in (0, 1, 2, 4, 5):
        server.receive(cid, replies[cid])
    run(server, clients)
    assert 3 not in server.survivors
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, server.survivors))


def test_share_keys_misaddressed_or_wrong_length():
    server, clients, *_ = make_round(6, 3, k=2, t=2)
    step(server, clients, until="share_keys")
    replies = _answers(server, clients)
    r = replies[0]
    wrong_to = m.ShareKeys(round_id=7, self_mask_commitment=r.self_mask_commitment,
                           receivers=r.receivers[:-1], ciphertexts=r.ciphertexts[:-m.CIPHERTEXT_BYTES])
    with pytest.raises(secagg.RemoteProtocolError, match="neighbours"):
        server.receive(0, wrong_to)
    with pytest.raises(ValueError, match="bytes"):  # a short ciphertext cannot even be a message
        m.ShareKeys(round_id=7, self_mask_commitment=r.self_mask_commitment,
                    receivers=r.receivers, ciphertexts=r.ciphertexts[:-1])
    data = bytearray(secagg.encode(replies[1]))
    with pytest.raises(secagg.DecodeError) as info:
        secagg.decode(bytes(data[:-1]), peer=1)
    assert info.value.peer == 1


def test_unmask_shares_for_peers_not_asked_or_outside_field():
    server, clients, xs, ws = make_round(7, 3, t=3, seed=4)
    step(server, clients, until="masked_input")
    msgs = server.next_messages()
    for cid, msg in sorted(msgs.items()):
        if cid != 6:
            server.receive(cid, clients[cid].receive(msg))
    server.drop(6)  # 6 dropped: its key shares are asked for
    assert server.stage == "unmask"
    replies = _answers(server, clients)
    r0 = replies[0]
    # claim a self-mask share for the dropped client: that would unmask it completely
    forged = m.UnmaskShares(round_id=7, self_mask_owners=m.ids(list(r0.self_mask_owners) + [6]),
                            self_mask_shares=np.vstack([r0.self_mask_shares, np.zeros((1, m.LIMBS), np.uint32)]),
                            mask_key_owners=r0.mask_key_owners, mask_key_shares=r0.mask_key_shares)
    with pytest.raises(secagg.RemoteProtocolError, match="not asked about") as info:
        server.receive(0, forged)
    assert info.value.peer == 0
    r1 = replies[1]
    big = r1.self_mask_shares.copy()
    big[0, 3] = 0xFFFFFFFF
    forged = dataclasses.replace(r1, self_mask_shares=big)
    with pytest.raises(secagg.InvalidShare) as info:
        server.receive(1, forged)
    assert info.value.peer == 1
    for cid in (2, 3, 4, 5):
        server.receive(cid, replies[cid])
    assert server.stage == "done"
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, server.survivors, seed=4))


def test_inconsistent_share_is_detected_named_and_survived():
    server, clients, xs, ws = make_round(8, 3, t=3, seed=6)
    step(server, clients, until="unmask")
    replies = _answers(server, clients)
    r = replies[2]
    owner = int(r.self_mask_owners[0])
    bad = r.self_mask_shares.copy()
    bad[0, 0] ^= 1
    replies[2] = dataclasses.replace(r, self_mask_shares=bad)
    for cid in sorted(replies):
        server.receive(cid, replies[cid])
    assert server.stage == "done"
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, server.survivors, seed=6))
    # client 2's first share is its own self-mask share; the holders of owner 2's shares
    # are 0..7 and the first three, 0, 1, 2, are used: the tampered share was used, caught
    # by the commitment check, and its sender named
    assert owner == 2
    assert any(isinstance(f, secagg.InvalidShare) and f.peer == 2 for f in server.faults)


def test_messages_after_the_round_are_local_errors():
    server, clients, *_ = make_round(3, 2, t=2)
    run(server, clients)
    with pytest.raises(secagg.LocalProtocolError):
        server.receive(0, m.AdvertiseKeys(round_id=7, encryption_key=bytes(32), mask_key=bytes(32)))
    with pytest.raises(secagg.LocalProtocolError):
        server.close_stage()


# -- client side -------------------------------------------------------------------

def test_client_refuses_both_shares_of_one_peer():
    server, clients, *_ = make_round(5, 3, t=2)
    step(server, clients, until="unmask")
    req = server.next_messages()[0]
    evil = m.UnmaskRequest(round_id=7, survivors=req.survivors, dropped=req.survivors[:1].copy())
    with pytest.raises(secagg.RemoteProtocolError, match="both shares") as info:
        clients[0].receive(evil)
    assert info.value.peer == "server"
    assert clients[0].stage is secagg.ClientStage.ERROR
    with pytest.raises(secagg.LocalProtocolError):  # and it answers nothing afterwards
        clients[0].receive(req)


def test_client_answers_unmask_once():
    server, clients, *_ = make_round(5, 3, t=2)
    step(server, clients, until="unmask")
    req = server.next_messages()[1]
    clients[1].receive(req)
    with pytest.raises(secagg.LocalProtocolError):
        clients[1].receive(dataclasses.replace(req, survivors=m.ids(()), dropped=req.survivors.copy()))


def test_client_refuses_strangers_self_and_too_few_survivors():
    server, clients, *_ = make_round(6, 3, t=3)
    step(server, clients, until="unmask")
    reqs = server.next_messages()
    cases = [
        (0, dataclasses.replace(reqs[0], dropped=m.ids([0])), "itself"),
        (1, dataclasses.replace(reqs[1], survivors=m.ids(list(reqs[1].survivors) + [42])), "holds no shares"),
        (2, dataclasses.replace(reqs[2], survivors=reqs[2].survivors[:1].copy(),
                                dropped=reqs[2].survivors[1:].copy()), "threshold"),
    ]
    for cid, req, words in cases:
        with pytest.raises(secagg.RemoteProtocolError, match=words):
            clients[cid].receive(req)


def test_client_refuses_wrong_stage_and_round_without_changing_state():
    server, clients, *_ = make_round(4, 3)
    req = server.next_messages()[0]
    with pytest.raises(secagg.RemoteProtocolError, match="expected AdvertiseRequest"):
        clients[0].receive(m.UnmaskRequest(round_id=7, survivors=m.ids(()), dropped=m.ids(())))
    assert clients[0].stage is secagg.ClientStage.AWAIT_ADVERTISE
    clients[0].receive(req)
    with pytest.raises(secagg.RemoteProtocolError, match="round"):
        clients[0].receive(m.ShareKeysRequest(round_id=8, neighbour_ids=m.ids(()), encryption_keys=b"", mask_keys=b""))
    assert clients[0].stage is secagg.ClientStage.AWAIT_SHARE_KEYS


def test_client_refuses_bad_neighbour_lists():
    server, clients, *_ = make_round(5, 3, t=3)
    adv = server.next_messages()
    keys = {c: clients[c].receive(adv[c]) for c in range(5)}

    def request(*pairs):  # (claimed id, whose keys)
        return m.ShareKeysRequest(round_id=7, neighbour_ids=m.ids([c for c, _ in pairs]),
                                  encryption_keys=b"".join(keys[k].encryption_key for _, k in pairs),
                                  mask_keys=b"".join(keys[k].mask_key for _, k in pairs))

    with pytest.raises(secagg.RemoteProtocolError, match="own neighbour"):
        clients[0].receive(request((0, 0), (1, 1)))
    with pytest.raises(secagg.RemoteProtocolError, match="neighbours, need"):
        clients[1].receive(request((2, 2)))
    with pytest.raises(secagg.RemoteProtocolError, match="repeat"):
        clients[2].receive(request((3, 3), (4, 3)))
    with pytest.raises(ValueError, match="distinct"):
        request((3, 3), (3, 3))


def test_client_refuses_ciphertexts_from_non_neighbours_and_config_it_cannot_meet():
    server, clients, *_ = make_round(6, 3, k=2, t=2)
    step(server, clients, until="masked_input")
    req = server.next_messages()[0]
    outsider = next(c for c in range(6) if c not in set(req.senders.tolist()) | {0})
    with pytest.raises(secagg.RemoteProtocolError, match="non-neighbours"):
        clients[0].receive(m.MaskedInputRequest(round_id=7, senders=m.ids(list(req.senders) + [outsider]),
                                                ciphertexts=req.ciphertexts + b"x" * m.CIPHERTEXT_BYTES))
    # a config under which quantisation could overflow is refused before anything is sent
    _, fresh, *_ = make_round(6, 3)
    cfg = dataclasses.replace(server.config, scale=server.config.scale * 4)
    with pytest.raises(secagg.RemoteProtocolError, match="overflow"):
        fresh[0].receive(m.AdvertiseRequest(config=cfg))


def test_tampered_share_ciphertext_is_skipped_not_fatal():
    server, clients, xs, ws = make_round(6, 3, t=2, seed=2)
    step(server, clients, until="share_keys")
    replies = _answers(server, clients)
    r = replies[0]
    ct = bytearray(r.ciphertexts)
    ct[20] ^= 1  # inside the first receiver's ciphertext
    replies[0] = dataclasses.replace(r, ciphertexts=bytes(ct))
    for cid in sorted(replies):
        server.receive(cid, replies[cid])
    run(server, clients)
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, server.survivors, seed=2))


# -- the wire ------------------------------------------------------------------------

def _every_message():
    server, clients, *_ = make_round(4, 3, t=2)
    seen = []
    while not server.done:
        for cid, msg in sorted(server.next_messages().items()):
            reply = clients[cid].receive(msg)
            seen += [msg, reply]
            server.receive(cid, reply)
    return seen


@pytest.mark.parametrize("index", range(8))
def test_every_message_type_round_trips_and_rejects_corruption(index):
    msgs = _every_message()
    kinds = {}
    for msg in msgs:
        kinds.setdefault(type(msg), msg)
    msg = list(kinds.values())[index]
    data = secagg.encode(msg)
    again = secagg.decode(data)
    assert type(again) is type(msg)
    for cut in (1, len(data) // 2, len(data) - 5):
        with pytest.raises(secagg.DecodeError) as info:
            secagg.decode(data[:cut], peer=3)
        assert info.value.peer == 3
    with pytest.raises(secagg.DecodeError):
        secagg.decode(data + b"\x00", peer=3)


def test_a_stale_answer_from_a_closed_stage_is_refused_without_dropping():
    server, clients, xs, ws = make_round(5, 3, seed=8)
    adverts = _answers(server, clients)
    for cid in sorted(adverts):
        server.receive(cid, adverts[cid])
    assert server.stage == "share_keys"
    with pytest.raises(secagg.RemoteProtocolError, match="closed stage"):
        server.receive(2, adverts[2])  # a retransmission of its advertisement
    run(server, clients)
    assert 2 in server.survivors
    np.testing.assert_array_equal(server.result_words(), expected_words(server.config, xs, ws, server.survivors, seed=8))


def test_clients_dropping_at_unmask_are_contributors_not_dropped():
    server, clients, *_ = make_round(8, 3, seed=2)
    run(server, clients, {3: "unmask", 6: "masked_input"})
    res = server.result()
    assert 3 in res.contributors and res.dropped == (6,)


def test_low_order_public_key_is_rejected_at_advertise():
    server, clients, *_ = make_round(4, 3, t=2)
    replies = _answers(server, clients)
    with pytest.raises(secagg.RemoteProtocolError, match="low-order") as info:
        server.receive(1, dataclasses.replace(replies[1], mask_key=bytes(32)))
    assert info.value.peer == 1


def test_the_rounds_max_weight_rules_not_the_clients_backend():
    server_backend = secagg.SecAggPlusBackend(neighbours="all", threshold=2, max_weight=4)
    server = server_backend.server_session(round_id=1, client_ids=(0, 1, 2), dim=2,
                                           rng=np.random.default_rng(0))
    client_backend = secagg.SecAggPlusBackend()  # its own max_weight (1) does not cap
    ok = client_backend.client_session(client_id=0, vector=np.ones(2), weight=3,
                                       rng=np.random.default_rng(1))
    heavy = client_backend.client_session(client_id=1, vector=np.ones(2), weight=9,
                                          rng=np.random.default_rng(2))
    requests = server.next_messages()
    ok.receive(requests[0])
    with pytest.raises(secagg.RemoteProtocolError, match="1..4"):
        heavy.receive(requests[1])
