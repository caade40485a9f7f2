"""DP events are frozen and cannot be built invalid."""

from __future__ import annotations

import dataclasses
import math

import pytest

import dp

G = dp.Gaussian(noise_multiplier=1.0)


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: dp.Gaussian(noise_multiplier=0.0), "noise_multiplier"),
        (lambda: dp.Gaussian(noise_multiplier=math.nan), "noise_multiplier"),
        (lambda: dp.Gaussian(noise_multiplier=True), "noise_multiplier"),
        (lambda: dp.Laplace(noise_multiplier=-1.0), "noise_multiplier"),
        (lambda: dp.DiscreteGaussian(sigma=1.0, sensitivity=0.0), "sensitivity"),
        (lambda: dp.Skellam(mu=1.0, l1_sensitivity=1.0, l2_sensitivity=2.0), "l2_sensitivity"),
        (lambda: dp.PoissonSampled(rate=0.0, event=G), "rate"),
        (lambda: dp.PoissonSampled(rate=1.5, event=G), "rate"),
        (lambda: dp.PoissonSampled(rate=0.5, event="G"), "event"),
        (lambda: dp.SampledWithoutReplacement(population_size=10, sample_size=11, event=G),
         "sample_size"),
        (lambda: dp.SampledWithoutReplacement(population_size=0, sample_size=0, event=G),
         "population_size"),
        (lambda: dp.SelfComposed(event=G, count=0), "count"),
        (lambda: dp.Composed(events=(G, 3)), "events"),
    ],
)
def test_invalid_events_raise_naming_the_argument(build, argument: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dp.DPValueError, match=argument) as info:
        build()
    assert isinstance(info.value, ValueError)


def test_events_are_frozen_hashable_keyword_only() -> None:
    e = dp.PoissonSampled(rate=0.1, event=G)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.rate = 0.2  # type: ignore[misc]
    assert hash(e) == hash(dp.PoissonSampled(rate=0.1, event=dp.Gaussian(noise_multiplier=1)))
    with pytest.raises(TypeError):
        dp.Gaussian(1.0)  # type: ignore[misc]


def test_composed_stores_a_tuple_and_rate_property() -> None:
    assert dp.Composed(events=[G, G]).events == (G, G)  # type: ignore[arg-type]
    s = dp.SampledWithoutReplacement(population_size=200, sample_size=10, event=G)
    assert s.rate == 0.05
