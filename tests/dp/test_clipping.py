"""Clipping: Hypothesis properties (bound, direction, identity below C) and adaptive clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dp

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
layer = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
)
updates = st.lists(layer, min_size=1, max_size=4)
clips = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False)


def _norm(arrays) -> float:  # type: ignore[no-untyped-def]
    return math.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays))


@settings(max_examples=300, deadline=None)
@given(update=updates, clip=clips)
def test_flat_clip_bounds_norm_keeps_direction_and_identity(update, clip) -> None:  # type: ignore[no-untyped-def]
    r = dp.clip_l2(update, clip=clip)
    before = _norm(update)
    after = _norm(r.update)
    assert after <= clip * (1 + 1e-12)
    assert r.norm == pytest.approx(before, rel=1e-9)
    assert [a.shape for a in r.update] == [np.shape(a) for a in update]
    assert [a.dtype for a in r.update] == [np.asarray(a).dtype for a in update]
    if before <= clip:
        assert not r.clipped
        for a, b in zip(r.update, update, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert r.clipped
        assert after == pytest.approx(clip, rel=1e-5)
        # Same direction: every array scaled by the same positive factor.
        flat_in = np.concatenate([np.ravel(a).astype(np.float64) for a in update])
        flat_out = np.concatenate([np.ravel(a).astype(np.float64) for a in r.update])
        expect = flat_in * (clip / before)
        np.testing.assert_allclose(flat_out, expect, rtol=1e-5, atol=clip * 1e-6)


@settings(max_examples=200, deadline=None)
@given(update=updates, clip=clips)
def test_per_layer_clip_bounds_each_layer_and_the_total(update, clip) -> None:  # type: ignore[no-untyped-def]
    r = dp.clip_l2_per_layer(update, clip=clip)
    per = clip / math.sqrt(len(update))
    for a, b, c in zip(r.update, update, r.clips, strict=True):
        assert c == pytest.approx(per)
        assert _norm([a]) <= c * (1 + 1e-12)
        if _norm([b]) <= c:
            np.testing.assert_array_equal(a, b)
    assert _norm(r.update) <= clip * (1 + 1e-9)


def test_per_layer_with_explicit_bounds() -> None:
    r = dp.clip_l2_per_layer([np.array([3.0, 4.0]), np.array([1.0])], clip=[1.0, 2.0])
    np.testing.assert_allclose(r.update[0], [0.6, 0.8])
    np.testing.assert_array_equal(r.update[1], [1.0])
    assert r.norms == (5.0, 1.0) and r.clips == (1.0, 2.0) and r.clipped
    same = dp.clip_l2_per_layer([np.array([3.0, 4.0]), np.array([1.0])], clip=np.array([1.0, 2.0]))
    np.testing.assert_array_equal(same.update[0], r.update[0])
    with pytest.raises(dp.DPValueError, match="one bound per layer"):
        dp.clip_l2_per_layer([np.ones(2)], clip=[1.0, 2.0])
    with pytest.raises(dp.DPValueError, match=r"clip\[1\]"):
        dp.clip_l2_per_layer([np.ones(2), np.ones(2)], clip=[1.0, -2.0])


def test_clip_of_huge_values_does_not_overflow() -> None:
    r = dp.clip_l2([np.array([1e200, 1e200])], clip=1.0)
    np.testing.assert_allclose(r.update[0], [2**-0.5, 2**-0.5])
    assert r.norm == pytest.approx(math.sqrt(2) * 1e200)


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ([], "empty"),
        ([np.array([]), np.zeros((0, 3))], "empty arrays"),  # issue 3: empty updates
        (np.ones(3), "sequence"),
        ([np.array([1.0, np.nan])], r"update\[0\].*finite"),
        ([np.ones(2), np.array([np.inf])], r"update\[1\].*finite"),
        ([np.array(["a"])], r"update\[0\].*real"),
    ],
)
def test_bad_updates_name_the_argument(update, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dp.DPValueError, match=match):
        dp.clip_l2(update, clip=1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_clip_is_refused(bad: float) -> None:
    with pytest.raises(dp.DPValueError, match="clip"):
        dp.clip_l2([np.ones(2)], clip=bad)


def _config(**kw) -> dp.AdaptiveClipConfig:  # type: ignore[no-untyped-def]
    base = {"initial_clip": 0.1, "target_quantile": 0.5, "learning_rate": 0.2, "count_noise_std": 1.0}
    return dp.AdaptiveClipConfig(**{**base, **kw})


def test_adaptive_clip_tracks_the_target_quantile() -> None:
    # Norms are log-normal with median e^0 = 1; quantile 0.5 should settle near 1,
    # quantile 0.9 near exp(1.2816 * 0.5).
    for q, expect in [(0.5, 1.0), (0.9, math.exp(1.2816 * 0.5))]:
        rng = np.random.default_rng(42)
        clipper = dp.AdaptiveClipper(_config(target_quantile=q, count_noise_std=2.0))
        history = []
        for _ in range(300):
            norms = np.exp(rng.normal(0.0, 0.5, 100))
            ups = [[np.array([n, 0.0])] for n in norms]
            res = clipper.step(ups, rng=rng)
            history.append(res.clip)
            assert all(_norm(u) <= res.clip * (1 + 1e-12) for u in res.updates)
        assert np.mean(history[-100:]) == pytest.approx(expect, rel=0.1)


def test_adaptive_clip_result_reports_what_was_spent() -> None:
    rng = np.random.default_rng(1)
    cfg = _config(count_noise_std=5.0)
    ups = [[np.array([0.05])], [np.array([3.0])], [np.array([0.01, 0.02])[:1]]]
    res = dp.adaptive_clip(ups, clip=0.1, config=cfg, rng=rng)
    assert res.clip == 0.1
    assert res.norms == pytest.approx((0.05, 3.0, 0.01))
    assert res.count_noise_std == 5.0 and res.count_noise_multiplier == 10.0
    assert res.next_clip == pytest.approx(0.1 * math.exp(-0.2 * (res.noisy_fraction - 0.5)))
    with pytest.raises(dataclass_error()):
        res.clip = 2.0  # type: ignore[misc]


def dataclass_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_next_clip_is_geometric_and_pure() -> None:
    cfg = _config(count_noise_std=1e-9)
    new, frac = dp.next_clip(clip=2.0, unclipped_count=10, num_clients=10, config=cfg,
                             rng=np.random.default_rng(0))
    assert frac == pytest.approx(1.0)
    assert new == pytest.approx(2.0 * math.exp(-0.2 * 0.5))
    new, frac = dp.next_clip(clip=2.0, unclipped_count=0, num_clients=10, config=cfg,
                             rng=np.random.default_rng(0))
    assert new == pytest.approx(2.0 * math.exp(0.2 * 0.5))
    with pytest.raises(dp.DPValueError, match="unclipped_count"):
        dp.next_clip(clip=1.0, unclipped_count=11, num_clients=10, config=cfg,
                     rng=np.random.default_rng(0))


def test_adaptive_clip_refuses_mismatched_shapes_and_empty_batches() -> None:
    rng = np.random.default_rng(0)
    clipper = dp.AdaptiveClipper(_config())
    with pytest.raises(dp.DPValueError, match=r"updates\[1\] has shapes"):
        clipper.step([[np.ones(3)], [np.ones(4)]], rng=rng)
    with pytest.raises(dp.DPValueError, match="at least one"):
        clipper.step([], rng=rng)
    assert clipper.clip == 0.1  # unchanged after errors


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"initial_clip": 0.0}, "initial_clip"),
        ({"target_quantile": 1.0}, "target_quantile"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"count_noise_std": 0.0}, "count_noise_std"),
        ({"count_noise_std": float("nan")}, "count_noise_std"),
    ],
)
def test_adaptive_config_validates(kw, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dp.DPValueError, match=name):
        _config(**kw)


def test_update_noise_multiplier() -> None:
    # Andrew et al.: z = 1, sigma_b = m/20 with m = 100 -> z_delta = (1 - 1/100)^-1/2.
    z = dp.update_noise_multiplier(noise_multiplier=1.0, count_noise_std=5.0)
    assert z == pytest.approx((1 - 1 / 100) ** -0.5)
    with pytest.raises(dp.DPValueError, match="count_noise_std"):
        dp.update_noise_multiplier(noise_multiplier=2.0, count_noise_std=1.0)
