"""Known answers for key agreement, key derivation, mask expansion and Shamir."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import _crypto, _shamir

VECTORS = Path(__file__).parents[1] / "vectors" / "secagg"
CRYPTO = json.loads((VECTORS / "crypto.json").read_text())
SHAMIR = json.loads((VECTORS / "shamir.json").read_text())


def test_x25519_rfc7748():
    v = CRYPTO["x25519"]
    alice = _crypto.KeyPair.from_private_bytes(bytes.fromhex(v["alice_private"]))
    bob = _crypto.KeyPair.from_private_bytes(bytes.fromhex(v["bob_private"]))
    assert alice.public_bytes.hex() == v["alice_public"]
    assert bob.public_bytes.hex() == v["bob_public"]
    assert alice.exchange(bob.public_bytes).hex() == v["shared"] == bob.exchange(alice.public_bytes).hex()
    assert v["alice_private"] not in repr(alice)


@pytest.mark.parametrize("case", CRYPTO["hkdf"], ids=lambda c: c["source"])
def test_hkdf_rfc5869(case):
    got = _crypto.hkdf_sha256(bytes.fromhex(case["ikm"]), info=bytes.fromhex(case["info"]),
                              length=case["length"], salt=bytes.fromhex(case["salt"]) or None)
    assert got.hex() == case["okm"]


@pytest.mark.parametrize("case", CRYPTO["derive"], ids=lambda c: c["purpose"])
def test_key_derivation_is_pinned_and_label_separated(case):
    secret = bytes.fromhex(case["secret"])
    key = _crypto.derive(case["purpose"], secret, round_id=case["round_id"], a=case["a"], b=case["b"])
    assert key.hex() == case["key"]
    # any other round or pair gives another key
    assert _crypto.derive(case["purpose"], secret, round_id=case["round_id"] + 1, a=case["a"], b=case["b"]) != key
    assert _crypto.derive(case["purpose"], secret, round_id=case["round_id"], a=case["b"], b=case["a"]) != key


def test_labels_are_distinct():
    assert len(set(_crypto.LABELS.values())) == len(_crypto.LABELS)


@pytest.mark.parametrize("case", CRYPTO["masks"], ids=lambda c: c["dtype"])
def test_mask_expansion(case):
    exp = _crypto.MaskExpander(case["dim"], np.dtype(case["dtype"]))
    words = exp.expand(bytes.fromhex(case["seed"]))
    assert words.tolist() == case["words"]
    acc = np.zeros(case["dim"], dtype=case["dtype"])
    exp.add(acc, bytes.fromhex(case["seed"]))
    exp.subtract(acc, bytes.fromhex(case["seed"]))
    assert not acc.any()


def test_mask_expansion_rejects_short_seed_and_bad_dtype():
    with pytest.raises(ValueError, match="32 bytes"):
        _crypto.MaskExpander(4).expand(b"x" * 16)
    with pytest.raises(ValueError, match="dtype"):
        _crypto.MaskExpander(4, np.int32)


def _points_shares(case):
    pts = np.array(case["points"], dtype=np.int64)
    ys = np.stack([np.frombuffer(bytes.fromhex(s), dtype="<u4").astype(np.int64) for s in case["shares"]])
    return pts, ys


@pytest.mark.parametrize("case", SHAMIR["cases"], ids=lambda c: f"t={c['threshold']}")
def test_shamir_reconstructs_independent_shares(case):
    pts, ys = _points_shares(case)
    t = case["threshold"]
    for start in range(len(pts) - t + 1):  # every window of t shares works
        got = _shamir.limbs_to_secret(_shamir.reconstruct(pts[start:start + t], ys[start:start + t]))
        assert got is not None and got.hex() == case["secret"]


@pytest.mark.parametrize("case", SHAMIR["negative"], ids=lambda c: c["case"])
def test_shamir_negative(case):
    pts, ys = _points_shares(case)
    got = _shamir.limbs_to_secret(_shamir.reconstruct(pts, ys))
    assert got is None or got.hex() != case["secret"]


def test_shamir_split_roundtrip_and_validation():
    secrets = [bytes(range(32)), bytes(range(32, 64))]
    limbs = _shamir.secret_to_limbs(secrets)
    xs = np.arange(1, 40)
    shares = _shamir.split(limbs, xs, 20)
    assert shares.shape == (39, 2, 16) and shares.max() < _shamir.PRIME
    pick = np.random.default_rng(0).choice(39, 20, replace=False)
    rec = _shamir.reconstruct(xs[pick], shares[pick])
    assert [_shamir.limbs_to_secret(r) for r in rec] == secrets
    with pytest.raises(ValueError, match="threshold"):
        _shamir.split(limbs, xs, 40)
    with pytest.raises(ValueError, match="distinct"):
        _shamir.split(limbs, np.array([1, 1, 2]), 2)
    with pytest.raises(ValueError, match="distinct"):
        _shamir.split(limbs, np.array([0, 1, 2]), 2)


def test_fewer_than_t_shares_look_uniform():
    # the same secret shared many times: any t-1 shares are uniform over the field
    limbs = _shamir.secret_to_limbs([bytes(32)])
    first = np.concatenate([_shamir.split(limbs, np.array([1, 2, 3]), 3)[:2].ravel() for _ in range(200)])
    # a zero secret would leak as small values if coefficients were not uniform
    assert abs(first.mean() / _shamir.PRIME - 0.5) < 0.02
    assert len(np.unique(first)) > 0.99 * first.size


@settings(max_examples=30, deadline=None)
@given(t=st.integers(2, 12), data=st.data())
def test_any_t_minus_1_shares_are_consistent_with_every_secret(t, data):
    """Fewer than t shares reveal nothing: for any other secret there is a t-th share
    that, with the same t - 1 shares, reconstructs it."""
    secret = data.draw(st.binary(min_size=32, max_size=32), label="secret")
    other = data.draw(st.binary(min_size=32, max_size=32), label="other")
    points = np.array(sorted(data.draw(st.sets(st.integers(1, 10_000), min_size=t, max_size=t))), dtype=np.int64)
    shares = _shamir.split(_shamir.secret_to_limbs([secret]), points, t)[:, 0, :]
    known, extra = points[:-1], points[-1]
    lam = _shamir.lagrange_at(points, 0)
    target = _shamir.secret_to_limbs([other])[0]
    partial = (lam[:-1, None] * shares[:-1] % _shamir.PRIME).sum(axis=0) % _shamir.PRIME
    forged = (target - partial) % _shamir.PRIME * _shamir._inv_mod(np.full(16, lam[-1])) % _shamir.PRIME
    ys = np.vstack([shares[:-1], forged[None, :]])
    assert _shamir.limbs_to_secret(_shamir.reconstruct(np.append(known, extra), ys)) == other
