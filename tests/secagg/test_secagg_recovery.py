"""Robust recovery by Reed-Solomon decoding: every coalition within 2e <= n - t is named, however
large n is, and none past the bound frames an honest holder."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from roundkit import SECRET, recover_one, shamir_shares

import secagg
from secagg import _recovery, _shamir

P = _shamir.PRIME


def _first_t_pass(xs, ys, t) -> bool:
    return _shamir.limbs_to_secret(_shamir.reconstruct(xs[:t], ys[:t])) == SECRET


def _cancel(xs, ys, a: int, b: int, t: int, rng) -> None:
    """Offsets on every limb of shares ``a`` and ``b`` (both among the first ``t``) that cancel
    at 0 in the Lagrange combination of the first ``t``."""
    lam = _shamir.lagrange_at(xs[:t], 0)
    la, lb = int(lam[a]), int(lam[b])
    da = rng.integers(1, P, ys.shape[1])
    db = np.array([(-la * int(d)) % P * pow(lb, P - 2, P) % P for d in da])
    ys[a], ys[b] = (ys[a] + da) % P, (ys[b] + db) % P


@pytest.mark.parametrize("bad", [
    [0, 1, 2, 3, 4, 5, 6, 7, 8],  # all among the first t
    [0, 5, 10, 15, 20, 25, 30, 35, 39],
    [3, 11, 19, 33, 34, 35, 36, 37, 38],
])
def test_nine_bad_shares_of_forty_are_named_however_they_were_forged(bad):
    # a random 20 of the 40 is clean with chance C(31, 20) / C(40, 20) ~ 6e-4: the old
    # search of 64 random subsets failed here about 96 times in 100
    n, t = 40, 20
    xs, ys = shamir_shares(n, t)
    rng = np.random.default_rng(bad[-1])
    _cancel(xs, ys, bad[0], bad[1], t, rng)  # two colluders invisible to the first t
    ys[bad[2], 5] = (ys[bad[2], 5] + 1) % P  # one limb off by one: the first t fail
    for i in bad[3:6]:  # one limb each
        limb = rng.integers(16)
        ys[i, limb] = (ys[i, limb] + rng.integers(1, P)) % P
    for i in bad[6:]:
        ys[i] = rng.integers(0, P, 16)
    assert not _first_t_pass(xs, ys, t)
    assert recover_one(xs, ys, t) == (SECRET, [int(xs[i]) for i in bad])


def test_an_unlucky_mix_of_the_limbs_falls_back_to_decoding_each_limb(monkeypatch):
    n, t = 40, 20
    xs, ys = shamir_shares(n, t)
    ys[0, 0], ys[0, 1] = (ys[0, 0] + 5) % P, (ys[0, 1] - 5) % P  # zero in the mix below
    others = [4, 9, 17, 22, 26, 30, 31, 35, 38]
    for i in others:
        ys[i, 3] = (ys[i, 3] + i) % P
    mix = np.zeros(16, dtype=np.int64)
    mix[[0, 1, 3]] = 1
    monkeypatch.setattr(_shamir, "_random_field", lambda shape: mix.copy())
    found = [s.tolist() for s in _recovery._error_sets(xs, ys, t)]
    assert found == [others, [0, *others]]  # the mix misses share 0; limb by limb finds it
    assert recover_one(xs, ys, t) == (SECRET, [1, *(i + 1 for i in others)])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_every_coalition_within_the_bound_is_named(data):
    n = data.draw(st.integers(3, 64), label="n")
    t = data.draw(st.integers(1, n - 2), label="t")
    e = data.draw(st.integers(1, (n - t) // 2), label="e")
    first = data.draw(st.integers(0, t - 1), label="a bad share among the first t")
    others = [i for i in range(n) if i != first]
    bad = sorted([first, *data.draw(st.lists(st.sampled_from(others), min_size=e - 1, max_size=e - 1,
                                             unique=True), label="bad")])
    xs, ys = shamir_shares(n, t)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    for i in bad:
        limbs = rng.random(16) < data.draw(st.sampled_from([0.07, 0.5, 1.0]), label="share of limbs")
        limbs[rng.integers(16)] = True
        ys[i, limbs] = (ys[i, limbs] + rng.integers(1, P, int(limbs.sum()))) % P
    assume(not _first_t_pass(xs, ys, t))  # (when the first t pass, the rest go unchecked)
    assert recover_one(xs, ys, t) == (SECRET, [int(xs[i]) for i in bad])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_decoding_finds_the_polynomial_and_only_its_wrong_values(data):
    n = data.draw(st.integers(1, 80), label="n")
    t = data.draw(st.integers(1, n), label="t")
    e = data.draw(st.integers(0, (n - t) // 2), label="e")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    xs = np.sort(rng.choice(np.arange(1, 10**6), n, replace=False))
    coeffs = [int(c) for c in rng.integers(0, P, t)]
    ys = np.array([sum(c * pow(int(x), j, P) for j, c in enumerate(coeffs)) % P for x in xs])  # oracle
    wrong = np.sort(rng.choice(n, e, replace=False))
    ys[wrong] = (ys[wrong] + rng.integers(1, P, e)) % P
    master = np.ones(1, dtype=np.int64)
    for x in xs.tolist():
        master = _recovery._mul(master, np.array([-x % P, 1]))
    found = _recovery._decode(xs, ys, t, master)
    assert found is not None and found.tolist() == wrong.tolist()


def test_a_coalition_past_the_decoding_bound_frames_nobody():
    # 11 of 41 (2e = n - t + 1) send a polynomial with the right secret that also passes
    # through 18 honest shares: it agrees with 29, the honest one with 30; neither has the margin
    n, t = 41, 20
    xs, ys = shamir_shares(n, t)
    coalition, fooled = list(range(11)), list(range(11, 29))

    def forged(x: int) -> int:  # x * prod (x - fooled): degree t - 1, zero at 0 and at the fooled
        out = x
        for i in fooled:
            out = out * (x - int(xs[i])) % P
        return out

    for i in coalition:
        ys[i] = (ys[i] + forged(int(xs[i])) * np.arange(1, 17)) % P
    assert list(_recovery._error_sets(xs, ys, t)) == []  # 11 from one polynomial, 12 from the other
    try:
        secret, named = recover_one(xs, ys, t)
    except secagg.RecoveryError as exc:
        assert exc.suspects == ()
    else:
        assert (secret, named) == (SECRET, [])


def test_random_forgeries_past_the_bound_fail_the_round_or_name_nobody():
    n, t = 40, 20
    xs, ys = shamir_shares(n, t)
    rng = np.random.default_rng(3)
    bad = rng.choice(n, 12, replace=False)
    ys[bad] = rng.integers(0, P, (12, 16))
    assert list(_recovery._error_sets(xs, ys, t)) == []  # more than (n - t) // 2 wrong: undecodable
    try:
        secret, named = recover_one(xs, ys, t)
    except secagg.RecoveryError as exc:
        assert exc.suspects == ()
    else:
        assert secret == SECRET and set(named) <= {int(xs[i]) for i in bad}
