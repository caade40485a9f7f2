"""Frozen, validated descriptions of differentially private mechanisms (DP events).

An event says completely what was released, never how it is accounted: accountants
(:mod:`dp._rdp`, :mod:`dp._pld`) decide whether they support it. Every event validates
in ``__post_init__``, so an invalid one cannot exist; a bad argument raises
:class:`~dp._errors.DPValueError` naming the field and the rule.

Noise is stated relative to sensitivity where that is the convention
(``noise_multiplier`` = noise scale / sensitivity) and absolutely where the
sensitivity enters the bound in more than one way (discrete Gaussian, Skellam).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dp._errors import DPValueError

__all__ = [
    "DPEvent",
    "Gaussian",
    "Laplace",
    "DiscreteGaussian",
    "Skellam",
    "PoissonSampled",
    "SampledWithoutReplacement",
    "SelfComposed",
    "Composed",
    "event_to_json",
    "event_from_json",
]


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DPValueError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x) or x <= 0.0:
        raise DPValueError(f"{name} must be finite and > 0, got {value!r}")
    return x


def _count(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DPValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise DPValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _event(name: str, value: object) -> None:
    if not isinstance(value, DPEvent):
        raise DPValueError(f"{name} must be a DPEvent, got {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DPEvent:
    """Base class of all DP events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Gaussian(DPEvent):
    """Gaussian noise of standard deviation ``noise_multiplier`` x L2 sensitivity."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "noise_multiplier", _positive("noise_multiplier", self.noise_multiplier)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Laplace(DPEvent):
    """Laplace noise of scale ``noise_multiplier`` x L1 sensitivity."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "noise_multiplier", _positive("noise_multiplier", self.noise_multiplier)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscreteGaussian(DPEvent):
    """Discrete Gaussian noise N_Z(0, sigma^2) per coordinate of an integer-valued query.

    ``sensitivity`` is the query's L2 sensitivity (Canonne, Kamath, Steinke 2020).
    """

    sigma: float
    sensitivity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _positive("sigma", self.sigma))
        object.__setattr__(self, "sensitivity", _positive("sensitivity", self.sensitivity))


@dataclass(frozen=True, slots=True, kw_only=True)
class Skellam(DPEvent):
    """Symmetric Skellam noise Sk(mu, mu) (variance 2 mu) per coordinate.

    The bound of Agarwal, Kairouz and Liu (2021) needs both the L1 and the L2
    sensitivity of the integer-valued query; ``l2_sensitivity <= l1_sensitivity``.
    """

    mu: float
    l1_sensitivity: float
    l2_sensitivity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _positive("mu", self.mu))
        l1 = _positive("l1_sensitivity", self.l1_sensitivity)
        l2 = _positive("l2_sensitivity", self.l2_sensitivity)
        if l2 > l1 * (1 + 1e-12):
            raise DPValueError(
                f"l2_sensitivity must be <= l1_sensitivity, got {l2!r} > {l1!r}"
            )
        object.__setattr__(self, "l1_sensitivity", l1)
        object.__setattr__(self, "l2_sensitivity", l2)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoissonSampled(DPEvent):
    """``event`` run on a Poisson sample: each record is kept with probability ``rate``."""

    rate: float
    event: DPEvent

    def __post_init__(self) -> None:
        rate = _positive("rate", self.rate)
        if rate > 1.0:
            raise DPValueError(f"rate must be in (0, 1], got {self.rate!r}")
        object.__setattr__(self, "rate", rate)
        _event("event", self.event)


@dataclass(frozen=True, slots=True, kw_only=True)
class SampledWithoutReplacement(DPEvent):
    """``event`` run on ``sample_size`` records drawn without replacement from
    ``population_size`` (substitution adjacency, as in Wang, Balle, Kasiviswanathan 2019).
    """

    population_size: int
    sample_size: int
    event: DPEvent

    def __post_init__(self) -> None:
        n = _count("population_size", self.population_size)
        m = _count("sample_size", self.sample_size)
        if m > n:
            raise DPValueError(f"sample_size must be <= population_size, got {m} > {n}")
        _event("event", self.event)

    @property
    def rate(self) -> float:
        """The sampling ratio ``sample_size / population_size``."""
        return self.sample_size / self.population_size


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfComposed(DPEvent):
    """``event`` repeated ``count`` times (adaptively, on the same data)."""

    event: DPEvent
    count: int

    def __post_init__(self) -> None:
        _event("event", self.event)
        _count("count", self.count)


@dataclass(frozen=True, slots=True, kw_only=True)
class Composed(DPEvent):
    """Every event of ``events`` in turn; a list is stored as a tuple."""

    events: tuple[DPEvent, ...]

    def __post_init__(self) -> None:
        if isinstance(self.events, DPEvent) or not isinstance(self.events, (tuple, list)):
            raise DPValueError("events must be a tuple of DPEvent")
        events = tuple(self.events)
        for i, e in enumerate(events):
            _event(f"events[{i}]", e)
        object.__setattr__(self, "events", events)


def event_to_json(event: DPEvent) -> dict[str, Any]:
    """``event`` as JSON values: ``{"type": <class name>, <field>: <value>, ...}``.

    Raises:
        DPValueError: ``event`` is not one of the events of this module.
    """
    _event("event", event)
    if _EVENTS.get(type(event).__name__) is not type(event):
        raise DPValueError(f"event must be one of {sorted(_EVENTS)}, got {type(event).__name__}")
    out: dict[str, Any] = {"type": type(event).__name__}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if isinstance(value, DPEvent):
            value = event_to_json(value)
        elif isinstance(value, tuple):
            value = [event_to_json(e) for e in value]
        out[field.name] = value
    return out


def event_from_json(data: Any) -> DPEvent:
    """The event :func:`event_to_json` wrote; validated like any new event.

    Raises:
        DPValueError: an unknown event name, missing or unknown fields, or a value that
            breaks the event's rules.
    """
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in _EVENTS:
        raise DPValueError(f"a DP event must be a dict with 'type' in {sorted(_EVENTS)}, "
                           f"got {data!r:.80}")
    cls = _EVENTS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    given = set(data) - {"type"}
    if given != names:
        raise DPValueError(f"{cls.__name__} needs fields {sorted(names)}, got {sorted(given)}")
    values: dict[str, Any] = {}
    for name in names:
        value = data[name]
        if isinstance(value, dict):
            value = event_from_json(value)
        elif isinstance(value, list):
            value = tuple(event_from_json(e) for e in value)
        values[name] = value
    return cls(**values)


_EVENTS: dict[str, type[DPEvent]] = {cls.__name__: cls for cls in (
    Gaussian, Laplace, DiscreteGaussian, Skellam, PoissonSampled, SampledWithoutReplacement,
    SelfComposed, Composed)}
