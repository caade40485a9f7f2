"""Adversarial checks of the SecAgg+ core: colluding share forgers, fuzzed decoders, secrets in reprs."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roundkit import SECRET, make_round, recover_one, run, shamir_shares, step

import secagg
from secagg import _messages as m
from secagg import _shamir
from secagg._recovery import _predict

P = _shamir.PRIME


def test_bad_shares_that_cancel_at_zero_do_not_frame_honest_holders():
    # points 1 and 3 get the same offset: their Lagrange weights at 0 within {1, 3, 5, 7}
    # are opposite, so that subset reconstructs the right secret from a wrong polynomial;
    # the holders of 5, 7 and the rest must not be named for it
    xs, ys = shamir_shares(10, 4)
    ys[:3, 0] = (ys[:3, 0] + 1) % P
    secret, named = recover_one(xs, ys, 4)
    assert secret == SECRET
    assert named == [1, 2, 3]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_forgers_never_frame_honest_holders_and_are_named_within_the_bound(data):
    n = data.draw(st.integers(4, 11), label="n")
    t = data.draw(st.integers(2, n - 1), label="t")
    e = data.draw(st.integers(1, max(1, (n - t + 1) // 2)), label="e")
    xs, ys = shamir_shares(n, t)
    bad = sorted(data.draw(st.lists(st.sampled_from(range(n)), min_size=e, max_size=e, unique=True), label="bad"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    for i in bad:
        ys[i] = (ys[i] + rng.integers(1, P, ys.shape[1])) % P
    if len(bad) >= 2 and n - len(bad) >= t:  # two forgeries that cancel at 0 in a subset holding both
        a, b = bad[:2]
        subset = sorted([a, b, *[i for i in range(n) if i not in (a, b)][: t - 2]])
        lam = _shamir.lagrange_at(xs[subset], 0)
        la, lb = int(lam[subset.index(a)]), int(lam[subset.index(b)])
        honest = [i for i in range(n) if i not in bad][:t]
        true = _predict(xs[honest], ys[honest], xs[[a, b]])  # what a and b should have sent
        da = rng.integers(1, P, ys.shape[1])
        db = np.array([(-la * int(d)) % P * pow(lb, P - 2, P) % P for d in da])
        ys[a], ys[b] = (true[0] + da) % P, (true[1] + db) % P
    secret, named = recover_one(xs, ys, t)
    assert secret == SECRET
    assert set(named) <= {int(xs[i]) for i in bad}, "an honest holder was named"
    first_passes = _shamir.limbs_to_secret(_shamir.reconstruct(xs[:t], ys[:t])) == SECRET
    if 2 * e <= n - t and not first_passes:  # (when the first t pass, the rest go unchecked)
        assert named == [int(xs[i]) for i in bad]


def test_a_client_committing_to_another_seed_is_named_when_the_round_fails():
    server, clients, *_ = make_round(6, 3, t=3, seed=2)
    for cid, msg in sorted(server.next_messages().items()):  # advertise
        server.receive(cid, clients[cid].receive(msg))
    for cid, msg in sorted(server.next_messages().items()):  # share keys; client 4 lies
        reply = clients[cid].receive(msg)
        if cid == 4:
            reply = dataclasses.replace(reply, self_mask_commitment=bytes(32))
        server.receive(cid, reply)
    run(server, clients)
    assert server.stage == "failed"
    assert server.failure.suspects == (4,)
    assert "client 4" in str(server.failure) and "commit" in str(server.failure)
    assert [f.peer for f in server.faults] == [4]
    with pytest.raises(secagg.RecoveryError):
        server.result()


def test_client_ids_outside_the_share_field_are_refused_not_a_crash():
    server, clients, *_ = make_round(4, 3, t=2)
    for cid, msg in sorted(server.next_messages().items()):
        server.receive(cid, clients[cid].receive(msg))
    req = server.next_messages()[0]
    ids = req.neighbour_ids.copy()
    ids[-1] = _shamir.PRIME - 1  # its share point would be p itself, i.e. 0: the secret
    with pytest.raises(secagg.RemoteProtocolError, match="largest client id") as info:
        clients[0].receive(dataclasses.replace(req, neighbour_ids=ids))
    assert info.value.peer == "server" and clients[0].stage is secagg.ClientStage.ERROR
    backend = secagg.SecAggPlusBackend(neighbours="all", threshold=2)
    with pytest.raises(ValueError, match="client_ids"):
        backend.server_session(round_id=1, client_ids=(0, 1, _shamir.PRIME - 1), dim=3,
                               rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="client_id"):
        backend.client_session(client_id=_shamir.PRIME - 1, vector=np.zeros(3), weight=1,
                               rng=np.random.default_rng(0))


def test_a_config_whose_clip_times_scale_overflows_is_refused_by_the_client():
    config = m.RoundConfig(round_id=1, num_clients=2, neighbours=1, threshold=2, dim=2, clip=1e300,
                           scale=1e300, modulus_bits=64, max_weight=1)
    with pytest.raises(secagg.QuantizationOverflowError, match="overflows"):
        secagg.Quantizer(num_clients=2, clip=1e300, scale=1e300, modulus_bits=64)
    client = secagg.SecAggPlusClient(client_id=0, vector=np.zeros(2), weight=1, rng=np.random.default_rng(0))
    with pytest.raises(secagg.RemoteProtocolError, match="overflows") as info:
        client.receive(m.AdvertiseRequest(config=config))
    assert info.value.peer == "server"


def _sample_encodings() -> list[bytes]:
    server, clients, *_ = make_round(4, 2, t=2, authenticated=True)
    out = []
    while not server.done:
        for cid, msg in sorted(server.next_messages().items()):
            reply = clients[cid].receive(msg)
            out += [secagg.encode(msg), secagg.encode(reply)]
            server.receive(cid, reply)
    return out


_SAMPLES = _sample_encodings()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_SAMPLES), st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=9)),
                                           max_size=3), st.integers(0, 10**6))
def test_decoding_mutated_messages_raises_only_decode_error(raw, patches, cut):
    data = bytearray(raw)
    for pos, chunk in patches:  # overwrite a few bytes anywhere (lengths, shapes, dtypes, counts)
        pos %= len(data)
        data[pos:pos + len(chunk)] = chunk
    data = data[: max(4, len(data) - cut % 16)] if cut % 3 == 0 else data
    try:
        secagg.decode(bytes(data), peer=5)
    except secagg.DecodeError as exc:
        assert exc.peer == 5


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 255), st.binary(max_size=300))
def test_decoding_arbitrary_bodies_raises_only_decode_error(tag, body):
    try:
        secagg.decode(b"BS" + bytes((1, tag)) + body, peer="server")
    except secagg.DecodeError as exc:
        assert exc.peer == "server"


def test_a_short_self_mask_seed_is_refused_at_construction():
    with pytest.raises(ValueError, match="32 bytes"):
        secagg.SecAggPlusClient(client_id=0, vector=np.zeros(2), weight=1, rng=np.random.default_rng(0),
                                self_mask_seed=bytes(16))


def test_no_secret_in_the_text_of_clients_keys_or_refusals():
    server, clients, *_ = make_round(4, 2, t=2)
    step(server, clients, until="unmask")
    client = clients[0]
    secrets = [client._seed, client._mask.private_bytes(), client._enc.private_bytes(), *client._box_keys.values()]
    req = server.next_messages()[0]
    texts = [repr(client), str(client), repr(client._mask), repr(client._enc), repr(server), repr(req)]
    try:
        client.receive(dataclasses.replace(req, dropped=req.survivors[:1].copy()))
    except secagg.RemoteProtocolError as exc:
        texts += [str(exc), repr(exc)]
    for text in texts:
        for secret in secrets:
            assert secret.hex()[:16] not in text and repr(secret)[2:20] not in text


def test_words_round_whose_weight_does_not_fit_the_modulus_is_refused():
    config = m.RoundConfig(round_id=1, num_clients=2, neighbours=1, threshold=2, dim=2, clip=1.0, scale=1.0,
                           modulus_bits=16, max_weight=2**20, encoding="words")
    client = secagg.SecAggPlusClient(client_id=0, words=np.array([1, 2], dtype=np.uint16), weight=2**17,
                                     rng=np.random.default_rng(0))
    with pytest.raises(secagg.RemoteProtocolError, match="weight 131072 does not fit in 16 bits"):
        client.receive(m.AdvertiseRequest(config=config))
