"""The ``ckks`` backend against NumPy, driven through the wire codec like a transport would."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tenseal")

import secagg  # noqa: E402
from secagg._ckks_crypto import chunk_sizes, pack, unpack  # noqa: E402
from secagg._ckks_messages import (  # noqa: E402
    CKKSDecryptReply,
    CKKSDecryptRequest,
    CKKSRequest,
    CKKSUpdate,
)
from secagg._ckks_seal import Engine  # noqa: E402

# Stated precision of the defaults (scale 2^40), measured max error per slot: a seeded
# (key holder) ciphertext 5e-10, a public-key one 5e-8; a sum of 100: 5e-9 and 4e-7.
# Tests allow 1e-7 per unit of total weight (weights here are >= 1 each).
SUM_ATOL = 1e-7


@pytest.fixture(scope="module")
def backend() -> secagg.CKKSBackend:
    return secagg.CKKSBackend.generate()


@pytest.fixture(scope="module")
def other_keys() -> secagg.CKKSKeys:
    return secagg.CKKSKeys.generate()


Tamper = Callable[[int, object], object]


def run_round(
    backend: secagg.CKKSBackend,
    xs: dict[int, np.ndarray],
    ws: dict[int, float],
    *,
    vanish: frozenset[tuple[str, int]] = frozenset(),
    tamper: Tamper | None = None,
    errors: list[secagg.RemoteProtocolError] | None = None,
    round_id: int = 7,
    deadline: bool = True,
) -> secagg.ServerSession:
    """Drive one round generically: bytes both ways, ``(stage, cid)`` pairs vanish.

    ``deadline=False`` fails if the round needs ``close_stage()`` to finish (that is,
    if the server still waits for someone after every reply has been handed in).
    """
    rng = np.random.default_rng(0)
    dim = len(next(iter(xs.values())))
    server = backend.server_session(round_id=round_id, client_ids=tuple(xs), dim=dim, rng=rng)
    clients = {
        c: backend.client_session(client_id=c, vector=x, weight=ws[c], rng=rng)
        for c, x in xs.items()
    }
    stages = []
    while not server.done:
        out = server.next_messages()
        stages.append(server.stage)
        if not out:
            assert deadline, f"server still waits in stage {server.stage}"
            server.close_stage()
            continue
        for cid, msg in out.items():
            if (server.stage, cid) in vanish:
                server.drop(cid)
                continue
            reply = clients[cid].receive(secagg.decode(secagg.encode(msg)))
            if tamper is not None:
                reply = tamper(cid, reply)
            try:
                server.receive(cid, secagg.decode(secagg.encode(reply), peer=cid))
            except secagg.RemoteProtocolError as exc:
                assert errors is not None, f"unexpected {exc!r}"
                errors.append(exc)
    return server


def inputs(n: int, dim: int, seed: int = 1) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    rng = np.random.default_rng(seed)
    xs = {10 + c: rng.uniform(-1, 1, dim) for c in range(n)}
    ws = {c: float(rng.integers(1, 50)) for c in xs}
    return xs, ws


def expected(xs, ws, ids):
    return sum(ws[c] * xs[c] for c in ids), sum(ws[c] for c in ids)


def test_weighted_sum_and_mean_match_numpy(backend):
    # 2048 slots per ciphertext: 5000 + 1 packed floats span three, the last partial.
    xs, ws = inputs(6, 5000)
    res = run_round(backend, xs, ws).result()
    want_sum, want_w = expected(xs, ws, xs)
    assert res.contributors == tuple(sorted(xs)) and res.dropped == ()
    np.testing.assert_allclose(res.weighted_sum, want_sum, rtol=0, atol=SUM_ATOL * want_w)
    assert abs(res.total_weight - want_w) < SUM_ATOL * want_w
    np.testing.assert_allclose(res.mean, want_sum / want_w, rtol=0, atol=1e-8)


@pytest.mark.parametrize("key_holders", [None, (10,)], ids=["seeded", "public-key"])
def test_mean_of_100_clients_within_1e_6(backend, key_holders):
    xs, _ = inputs(100, 300, seed=2)
    ws = dict.fromkeys(xs, 1.0)
    res = run_round(dataclasses.replace(backend, key_holders=key_holders), xs, ws).result()
    want = np.mean(list(xs.values()), axis=0)
    assert np.max(np.abs(res.mean - want)) < 1e-6
    assert np.max(np.abs(res.weighted_sum - want * 100)) < 1e-6


def test_stages_and_a_dropped_client_is_not_in_the_sum(backend):
    xs, ws = inputs(5, 100)
    server = run_round(
        backend, xs, ws, vanish=frozenset({("encrypted_input", 12)}), deadline=False
    )
    res = server.result()
    assert res.contributors == (10, 11, 13, 14) and res.dropped == (12,)
    want_sum, want_w = expected(xs, ws, res.contributors)
    np.testing.assert_allclose(res.weighted_sum, want_sum, atol=SUM_ATOL * want_w)
    assert server.stage == "done"


def test_close_stage_drops_the_silent_and_the_round_goes_on(backend):
    xs, ws = inputs(4, 50)
    rng = np.random.default_rng(0)
    server = backend.server_session(round_id=1, client_ids=tuple(xs), dim=50, rng=rng)
    clients = {c: backend.client_session(client_id=c, vector=xs[c], weight=ws[c], rng=rng) for c in xs}
    assert server.stage == "encrypted_input"
    for cid, msg in server.next_messages().items():
        if cid in (10, 11):
            server.receive(cid, clients[cid].receive(msg))
    server.close_stage()
    assert server.stage == "decrypt"
    (holder, request), = server.next_messages().items()
    assert holder == 10 and isinstance(request, CKKSDecryptRequest)
    assert request.contributors == (10, 11)
    server.receive(holder, clients[holder].receive(request))
    res = server.result()
    assert res.dropped == (12, 13)
    np.testing.assert_allclose(res.weighted_sum, expected(xs, ws, (10, 11))[0], atol=1e-5)


def test_decryptor_that_vanishes_is_replaced_by_the_next_key_holder(backend):
    xs, ws = inputs(4, 30)
    holders = backend.__class__(keys=backend.keys, key_holders=(13, 11))
    server = run_round(holders, xs, ws, vanish=frozenset({("decrypt", 13)}))
    res = server.result()
    assert res.contributors == (10, 11, 12, 13)  # 13's input is in the sum already
    np.testing.assert_allclose(res.weighted_sum, expected(xs, ws, xs)[0], atol=1e-5)


def test_no_key_holder_left_is_a_recovery_error(backend):
    xs, ws = inputs(3, 30)
    holders = backend.__class__(keys=backend.keys, key_holders=(11,))
    server = run_round(holders, xs, ws, vanish=frozenset({("decrypt", 11)}))
    with pytest.raises(secagg.RecoveryError, match="no key holder"):
        server.result()


def test_too_few_contributors_is_not_decrypted(backend):
    xs, ws = inputs(3, 30)
    vanish = frozenset({("encrypted_input", 10), ("encrypted_input", 11)})
    server = run_round(backend, xs, ws, vanish=vanish)
    with pytest.raises(secagg.RecoveryError, match="min_contributors"):
        server.result()


def test_nobody_contributing_gives_an_empty_result(backend):
    xs, ws = inputs(2, 30)
    vanish = frozenset({("encrypted_input", 10), ("encrypted_input", 11)})
    res = run_round(backend, xs, ws, vanish=vanish).result()
    assert res.contributors == () and res.total_weight == 0.0
    assert not np.any(res.weighted_sum)


def test_key_holder_refuses_to_decrypt_a_single_update(backend):
    xs, ws = inputs(2, 30)
    rng = np.random.default_rng(0)
    client = backend.client_session(client_id=10, vector=xs[10], weight=1.0, rng=rng)
    update = client.receive(CKKSRequest(round_id=1, dim=30, n_clients=2, key_id=backend.keys.key_id))
    assert isinstance(update, CKKSUpdate)
    lone = CKKSDecryptRequest(
        round_id=1, dim=30, key_id=backend.keys.key_id, contributors=(10,), chunks=update.chunks
    )
    with pytest.raises(secagg.RemoteProtocolError, match="at least 2") as info:
        client.receive(lone)
    assert info.value.peer == "server"


def test_client_without_the_secret_refuses_to_decrypt(backend):
    public = backend.__class__(keys=backend.keys, key_holders=(99,))
    client = public.client_session(client_id=10, vector=np.ones(3), weight=1.0, rng=np.random.default_rng())
    req = CKKSDecryptRequest(round_id=1, dim=3, key_id=backend.keys.key_id, contributors=(1, 2), chunks=())
    with pytest.raises(secagg.RemoteProtocolError, match="holds no key"):
        client.receive(req)


def test_public_context_cannot_decrypt(backend):
    xs, ws = inputs(3, 40)
    server = backend.server_session(round_id=1, client_ids=tuple(xs), dim=40, rng=np.random.default_rng())
    assert not backend.keys.public().has_secret
    # A non-holder client encrypts under the public key, a key holder seeded under the secret.
    for keys in (backend.keys.public(), backend.keys):
        client = secagg.CKKSBackend(keys=keys).client_session(
            client_id=10, vector=xs[10], weight=2.0, rng=np.random.default_rng()
        )
        update = client.receive(server.next_messages().get(10) or CKKSRequest(
            round_id=1, dim=40, n_clients=3, key_id=backend.keys.key_id))
        # The coordinator's context, as the server session loads it: adds, cannot decrypt.
        coordinator = Engine(backend.keys.public(), secret=False)
        ciphertexts = coordinator.load(update.chunks, 41, peer=10)
        coordinator.add_into(ciphertexts, coordinator.load(update.chunks, 41, peer=10))
        with pytest.raises(ValueError, match="secret"):
            coordinator.decrypt(ciphertexts, 41)
        # ...while the key holder's context reads the sum.
        holder = Engine(backend.keys, secret=True)
        doubled = holder.load(coordinator.serialize(ciphertexts), 41, peer="server")
        # Measured per slot: seeded 5e-10, public-key 5e-8 (no special prime to divide by).
        atol = 1e-8 if keys.has_secret else 4e-7
        np.testing.assert_allclose(holder.decrypt(doubled, 41), 2 * pack(xs[10], 2.0, 1.0),
                                   rtol=0, atol=atol)
    with pytest.raises(ValueError, match="secret"):
        Engine(backend.keys.public(), secret=True)


def test_public_context_multiplies_by_plaintext_scalars(backend):
    # The coordinator's context (public key only) scales ciphertexts; a key holder reads them.
    x = np.random.default_rng(5).uniform(-1, 1, 3000)
    holder = Engine(backend.keys, secret=True)
    coordinator = Engine(backend.keys.public(), secret=False)
    # an integer factor keeps the round's scale: the result passes the key holder's checks
    tripled = coordinator.multiply_scalar(coordinator.load(holder.encrypt(x), 3000, peer=1), -3)
    back = holder.load(coordinator.serialize(tripled), 3000, peer="server")
    np.testing.assert_allclose(holder.decrypt(back, 3000), -3 * x, rtol=0, atol=1e-8)
    # a fractional factor at scale 2^16: relative precision about 2^-16, less headroom
    third = coordinator.multiply_scalar(coordinator.load(holder.encrypt(x), 3000, peer=1), 1 / 3,
                                        scale_bits=16)
    np.testing.assert_allclose(holder.decrypt(third, 3000), x / 3, rtol=0, atol=2e-5)
    with pytest.raises(ValueError, match="integer"):
        coordinator.multiply_scalar(tripled, 0.5)
    with pytest.raises(ValueError, match="scale_bits"):
        coordinator.multiply_scalar(tripled, 0.5, scale_bits=18)
    with pytest.raises(ValueError, match="finite"):
        coordinator.multiply_scalar(tripled, float("nan"))
    with pytest.raises(ValueError, match="secret"):
        coordinator.decrypt(tripled, 3000)


# --- bad input: a named error with the client id, and the round goes on without it ----


def _with_chunks(fn: Callable[[tuple[bytes, ...]], tuple[bytes, ...]]) -> Callable[[object], object]:
    def apply(msg: object) -> object:
        assert isinstance(msg, CKKSUpdate)
        return dataclasses.replace(msg, chunks=fn(msg.chunks))
    return apply


def _other_params_chunks(msg):
    keys = secagg.CKKSKeys.generate(secagg.CKKSParams(poly_modulus_degree=8192))
    engine = Engine(keys, secret=True)
    return dataclasses.replace(msg, chunks=engine.encrypt(np.zeros(4096 * 3)))


def _other_params_public(msg):
    keys = secagg.CKKSKeys.generate(secagg.CKKSParams(data_prime_bits=50, scale_bits=40))
    return dataclasses.replace(msg, chunks=Engine(keys.public(), secret=False).encrypt(np.zeros(5001)))


def _longer_vector(msg):
    engine = Engine(_KEYS[0], secret=True)
    return dataclasses.replace(msg, chunks=engine.encrypt(np.zeros(5001 + 2048)))


_KEYS: list[secagg.CKKSKeys] = []


def _wrong_scale_chunks(msg):
    keys = secagg.CKKSKeys.generate(secagg.CKKSParams(scale_bits=30))
    engine = Engine(keys.public(), secret=False)
    return dataclasses.replace(msg, chunks=engine.encrypt(np.zeros(5001)))


BAD_UPDATES = {
    "truncated": (secagg.MalformedCKKSCiphertext, _with_chunks(lambda c: (c[0][:-100], *c[1:]))),
    "garbage": (secagg.MalformedCKKSCiphertext, _with_chunks(lambda c: (*c[:2], b"\x00" * 999))),
    "empty chunk": (secagg.MalformedCKKSCiphertext, _with_chunks(lambda c: (b"", *c[1:]))),
    "trailing bytes": (secagg.MalformedCKKSCiphertext, _with_chunks(lambda c: (c[0] + b"\x00" * 7, *c[1:]))),
    "header flipped": (
        secagg.MalformedCKKSCiphertext,
        _with_chunks(lambda c: (bytes([c[0][0] ^ 0xFF]) + c[0][1:], *c[1:])),
    ),
    "missing chunk": (secagg.CKKSLengthMismatch, _with_chunks(lambda c: c[:-1])),
    "extra chunk": (secagg.CKKSLengthMismatch, _with_chunks(lambda c: (*c, c[0]))),
    "vector too long": (secagg.CKKSLengthMismatch, _longer_vector),
    "public key of other parameters": (secagg.MalformedCKKSCiphertext, _other_params_public),
    "other parameters": (secagg.MalformedCKKSCiphertext, _other_params_chunks),
    "other scale": (secagg.MalformedCKKSCiphertext, _wrong_scale_chunks),
    "stale round": (secagg.RemoteProtocolError, lambda m: dataclasses.replace(m, round_id=6)),
    "wrong message": (secagg.RemoteProtocolError, lambda m: CKKSDecryptReply(round_id=7, values=np.zeros(3))),
}


@pytest.mark.parametrize("case", sorted(BAD_UPDATES))
def test_bad_update_is_named_and_left_out(backend, case):
    _KEYS[:] = [backend.keys]
    error_type, corrupt = BAD_UPDATES[case]
    xs, ws = inputs(4, 5000)
    errors: list[secagg.RemoteProtocolError] = []
    server = run_round(
        backend, xs, ws, errors=errors, tamper=lambda cid, m: corrupt(m) if cid == 12 else m,
        deadline=False,
    )
    assert len(errors) == 1 and type(errors[0]) is error_type and errors[0].peer == 12
    res = server.result()
    assert res.contributors == (10, 11, 13) and res.dropped == (12,)
    want_sum, want_w = expected(xs, ws, res.contributors)
    np.testing.assert_allclose(res.weighted_sum, want_sum, rtol=0, atol=SUM_ATOL * want_w)


def test_update_under_another_key_is_a_key_mismatch(backend, other_keys):
    xs, ws = inputs(3, 100)
    foreign = secagg.CKKSBackend(keys=other_keys)
    rogue = foreign.client_session(client_id=11, vector=xs[11], weight=ws[11], rng=np.random.default_rng())
    errors: list[secagg.RemoteProtocolError] = []

    def swap(cid, msg):
        if cid != 11:
            return msg
        return rogue.receive(CKKSRequest(round_id=7, dim=100, n_clients=3, key_id=other_keys.key_id))

    res = run_round(backend, xs, ws, errors=errors, tamper=swap, deadline=False).result()
    assert [type(e) for e in errors] == [secagg.CKKSKeyMismatch] and errors[0].peer == 11
    assert res.contributors == (10, 12)
    # Lying about the key id does not help: the sum is then garbage for the key
    # holder, which is why the key id is checked (an honest mistake is caught).


def test_bad_decrypt_reply_moves_on_to_the_next_key_holder(backend):
    xs, ws = inputs(3, 20)
    errors: list[secagg.RemoteProtocolError] = []

    def short(cid, msg):
        if isinstance(msg, CKKSDecryptReply) and cid == 10:
            return dataclasses.replace(msg, values=msg.values[:-1])
        return msg

    res = run_round(backend, xs, ws, errors=errors, tamper=short, deadline=False).result()
    assert [type(e) for e in errors] == [secagg.CKKSLengthMismatch] and errors[0].peer == 10
    np.testing.assert_allclose(res.weighted_sum, expected(xs, ws, xs)[0], atol=1e-5)


def test_unexpected_client_leaves_the_state_unchanged(backend):
    server = backend.server_session(round_id=1, client_ids=(1, 2), dim=5, rng=np.random.default_rng())
    with pytest.raises(secagg.RemoteProtocolError) as info:
        server.receive(3, CKKSUpdate(round_id=1, key_id=b"", chunks=()))
    assert info.value.peer == 3
    assert server.stage == "encrypted_input" and set(server.next_messages()) == {1, 2}
    with pytest.raises(secagg.LocalProtocolError):
        server.result()


def test_client_rejects_a_request_for_another_key_or_dimension(backend, other_keys):
    client = backend.client_session(client_id=1, vector=np.ones(4), weight=1.0, rng=np.random.default_rng())
    with pytest.raises(secagg.RemoteProtocolError, match="key"):
        client.receive(CKKSRequest(round_id=1, dim=4, n_clients=2, key_id=other_keys.key_id))
    with pytest.raises(secagg.RemoteProtocolError, match="dimension"):
        client.receive(CKKSRequest(round_id=1, dim=5, n_clients=2, key_id=backend.keys.key_id))


def test_client_refuses_an_update_that_could_wrap_around(backend):
    headroom = backend.keys.params.headroom
    client = backend.client_session(
        client_id=1, vector=np.ones(4), weight=headroom / 10, rng=np.random.default_rng()
    )
    with pytest.raises(secagg.ConfigurationError, match="weight_scale"):
        client.receive(CKKSRequest(round_id=1, dim=4, n_clients=20, key_id=backend.keys.key_id))


def test_weight_scale_keeps_large_weights_in_range():
    params = secagg.CKKSParams(weight_scale=1e4)
    backend = secagg.CKKSBackend.generate(params)
    xs, _ = inputs(3, 20)
    ws = dict(zip(xs, (2e5, 3e5, 4e5), strict=True))  # total 9e5 > the 2^18 headroom
    res = run_round(backend, xs, ws).result()
    want_sum, want_w = expected(xs, ws, xs)
    np.testing.assert_allclose(res.mean, want_sum / want_w, atol=1e-8)
    assert res.total_weight == pytest.approx(want_w, rel=1e-9)


def test_server_session_needs_a_sampled_key_holder(backend):
    holders = backend.__class__(keys=backend.keys, key_holders=(99,))
    with pytest.raises(secagg.ConfigurationError, match="key_holders"):
        holders.server_session(round_id=1, client_ids=(1, 2), dim=3, rng=np.random.default_rng())


# --- parameters, keys, packing ----------------------------------------------------------


def test_default_parameters_are_within_the_128_bit_bound_and_40_bytes_per_float(backend):
    p = backend.keys.params
    assert (p.poly_modulus_degree, p.data_prime_bits, p.scale_bits) == (4096, 60, 40)
    request = CKKSRequest(round_id=1, dim=2047, n_clients=2, key_id=backend.keys.key_id)
    sizes = {}
    for name, keys in (("seeded", backend.keys), ("public-key", backend.keys.public())):
        client = secagg.CKKSBackend(keys=keys).client_session(
            client_id=1, vector=np.zeros(2047), weight=1.0, rng=np.random.default_rng()
        )
        sizes[name] = len(secagg.encode(client.receive(request))) / 2048
    assert sizes["seeded"] <= 17 and sizes["public-key"] <= 33, sizes


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("poly_modulus_degree", 3000, "poly_modulus_degree"),
        ("data_prime_bits", 61, "data_prime_bits"),
        ("poly_modulus_degree", 1024, "poly_modulus_degree"),
        ("scale_bits", 57, "scale_bits"),
        ("weight_scale", 0.0, "weight_scale"),
        ("min_contributors", 0, "min_contributors"),
    ],
)
def test_params_reject_insecure_or_impossible_values(field, value, match):
    with pytest.raises(secagg.ConfigurationError, match=match):
        secagg.CKKSParams(**{field: value})


def test_keys_round_trip_through_the_wire_and_hide_the_secret_in_repr(backend):
    keys = secagg.decode(secagg.encode(backend.keys))
    assert keys == backend.keys and keys.key_id == backend.keys.key_id
    assert keys.public().secret_key is None and keys.public().key_id == keys.key_id
    assert "secret" in repr(keys) and str(keys.secret_key)[:20] not in repr(keys)


def test_n_2048_at_its_54_bit_bound_works():
    params = secagg.CKKSParams(poly_modulus_degree=2048, data_prime_bits=54, scale_bits=36)
    xs, ws = inputs(3, 3000)
    res = run_round(secagg.CKKSBackend.generate(params), xs, ws).result()
    want_sum, want_w = expected(xs, ws, xs)
    np.testing.assert_allclose(res.mean, want_sum / want_w, atol=1e-7)


def test_keys_of_other_parameters_are_refused(backend):
    wrong = dataclasses.replace(backend.keys, params=secagg.CKKSParams(data_prime_bits=50))
    with pytest.raises(secagg.ConfigurationError, match="keys do not match"):
        Engine(wrong, secret=False)


@pytest.mark.parametrize(("length", "slots"), [(1, 4), (4, 4), (5, 4), (4097, 2048)])
def test_packing_round_trips(length, slots):
    sizes = chunk_sizes(length + 1, slots)
    assert sum(sizes) == length + 1 and all(0 < s <= slots for s in sizes)
    x = np.linspace(-1, 1, length)
    packed = pack(x, 6.0, 2.0)
    total, weight = unpack(packed, 2.0)
    np.testing.assert_allclose(total, 6.0 * x)
    assert weight == 6.0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    vanished=st.sets(st.sampled_from(range(10, 16))),
    rejected=st.sets(st.sampled_from(range(10, 16)), max_size=2),
    bad_decryptor=st.booleans(),
)
def test_sum_is_exactly_the_accepted_updates_for_any_dropout(backend, vanished, rejected, bad_decryptor):
    rejected = rejected - vanished
    xs, ws = inputs(6, 40, seed=3)
    errors: list[secagg.RemoteProtocolError] = []
    first_holder = min(set(xs) - vanished - rejected, default=None)

    def tamper(cid, msg):
        if isinstance(msg, CKKSUpdate) and cid in rejected:
            return dataclasses.replace(msg, chunks=(msg.chunks[0][:-1],))
        if isinstance(msg, CKKSDecryptReply) and bad_decryptor and cid == first_holder:
            return dataclasses.replace(msg, values=np.full_like(msg.values, np.nan))
        return msg

    vanish = frozenset(("encrypted_input", c) for c in vanished)
    server = run_round(backend, xs, ws, vanish=vanish, tamper=tamper, errors=errors, deadline=False)
    accepted = tuple(sorted(set(xs) - vanished - rejected))
    assert {e.peer for e in errors} == rejected | ({first_holder} if bad_decryptor and len(accepted) >= 2 else set())
    if len(accepted) == 0:
        assert server.result().contributors == ()
        return
    if len(accepted) < 2:  # below min_contributors: never decrypted
        with pytest.raises(secagg.RecoveryError):
            server.result()
        return
    res = server.result()
    assert res.contributors == accepted and res.dropped == tuple(sorted(vanished | rejected))
    want_sum, want_w = expected(xs, ws, accepted)
    np.testing.assert_allclose(res.weighted_sum, want_sum, rtol=0, atol=SUM_ATOL * want_w)


def test_sessions_satisfy_the_backend_interface(backend):
    rng = np.random.default_rng()
    assert backend.name == "ckks"
    assert isinstance(backend.server_session(round_id=1, client_ids=(1, 2), dim=3, rng=rng), secagg.ServerSession)
    assert isinstance(backend.client_session(client_id=1, vector=np.ones(3), weight=1.0, rng=rng), secagg.ClientSession)
    with pytest.raises(ValueError, match="weight"):
        backend.client_session(client_id=1, vector=np.ones(3), weight=0.0, rng=rng)


def test_generic_simulate_driver_runs_ckks_with_dropouts(backend):
    result = secagg.simulate(
        clients=12, dim=3000, backend=backend, seed=4,
        dropouts={3: "encrypted_input", 0: "decrypt"},  # client 0 is the first decryptor
    )
    assert result.backend == "ckks" and result.dropped == (3,)
    assert result.max_abs_error < 1e-7
    assert set(result.seconds["server_stages"]) >= {"encrypted_input", "decrypt"}
