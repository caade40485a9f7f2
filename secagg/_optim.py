"""Server optimisers on flat vectors: momentum (Hsu et al. 2019) and the adaptive
FedAdam, FedYogi and FedAdagrad (Reddi et al., "Adaptive Federated Optimization",
ICLR 2021, Algorithm 2).

Each step is a pure function: it takes the current parameters ``x``, the
pseudo-gradient ``delta`` (the mean client update ``new - old``, so a step *adds*
it), the optimiser state, and returns the new parameters and the new state. The
state is a frozen dataclass of arrays; nothing here mutates its inputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["MomentumState", "AdaptiveState", "momentum_step", "adaptive_step", "ADAPTIVE_RULES",
           "state_to_dict", "state_from_dict"]

ADAPTIVE_RULES = ("adam", "yogi", "adagrad")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MomentumState:
    """Server momentum buffer ``v`` (``None`` before the first step)."""

    velocity: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveState:
    """First and second moment estimates and the number of steps taken."""

    m: np.ndarray | None = None
    v: np.ndarray | None = None
    steps: int = 0


def momentum_step(
    x: np.ndarray,
    delta: np.ndarray,
    state: MomentumState,
    *,
    learning_rate: float,
    momentum: float,
    nesterov: bool = False,
) -> tuple[np.ndarray, MomentumState]:
    """FedAvgM: ``v <- momentum * v + delta``; ``x <- x + lr * v`` (or, Nesterov,
    ``x <- x + lr * (momentum * v + delta)``). With ``momentum = 0`` this is FedAvg
    with a server learning rate."""
    velocity = delta.copy() if state.velocity is None else momentum * state.velocity + delta
    direction = momentum * velocity + delta if nesterov else velocity
    return x + learning_rate * direction, MomentumState(velocity=velocity)


def adaptive_step(
    x: np.ndarray,
    delta: np.ndarray,
    state: AdaptiveState,
    *,
    rule: str,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    tau: float,
    initial_accumulator: float = 0.0,
    bias_correction: bool = False,
) -> tuple[np.ndarray, AdaptiveState]:
    """One step of FedAdam, FedYogi or FedAdagrad (``rule``).

    ``m <- beta_1 m + (1 - beta_1) delta`` and, with ``d = delta**2``:

    - adam:    ``v <- beta_2 v + (1 - beta_2) d``
    - yogi:    ``v <- v - (1 - beta_2) d sign(v - d)``
    - adagrad: ``v <- v + d``

    then ``x <- x + lr * m / (sqrt(v) + tau)``. The moments start at 0 and
    ``initial_accumulator`` respectively (Reddi et al. start ``v`` at ``tau**2`` in
    their experiments; 0 is Flower's choice). ``bias_correction`` multiplies the
    learning rate by ``sqrt(1 - beta_2**t) / (1 - beta_1**t)`` (Adam's correction,
    not in the paper's algorithm).

    Raises:
        ValueError: ``rule`` is not one of ``ADAPTIVE_RULES``.
    """
    if rule not in ADAPTIVE_RULES:
        raise ValueError(f"rule must be one of {ADAPTIVE_RULES}, got {rule!r}")
    m = np.zeros_like(delta) if state.m is None else state.m
    v = np.full_like(delta, initial_accumulator) if state.v is None else state.v
    m = beta_1 * m + (1.0 - beta_1) * delta
    d = delta * delta
    if rule == "adam":
        v = beta_2 * v + (1.0 - beta_2) * d
    elif rule == "yogi":
        v = v - (1.0 - beta_2) * d * np.sign(v - d)
    else:
        v = v + d
    steps = state.steps + 1
    lr = learning_rate
    if bias_correction:
        lr = lr * np.sqrt(1.0 - beta_2**steps) / (1.0 - beta_1**steps)
    return x + lr * m / (np.sqrt(v) + tau), AdaptiveState(m=m, v=v, steps=steps)


_KINDS: dict[str, type[MomentumState] | type[AdaptiveState]] = {
    "momentum": MomentumState, "adaptive": AdaptiveState}


def state_to_dict(state: MomentumState | AdaptiveState | None) -> dict[str, Any] | None:
    """An optimiser state as a dict of arrays and ints (``None`` stays ``None``)."""
    if state is None:
        return None
    kind = next(k for k, cls in _KINDS.items() if isinstance(state, cls))
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    return {"kind": kind} | {k: v.copy() if isinstance(v, np.ndarray) else v
                             for k, v in fields.items()}


def state_from_dict(data: dict[str, Any] | None) -> MomentumState | AdaptiveState | None:
    """The inverse of :func:`state_to_dict`.

    Raises:
        ValueError: an unknown kind or field, or a moment that is not a 1-D float array.
    """
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        raise ValueError(f"optimizer state must have a kind in {sorted(_KINDS)}, got {data!r:.80}")
    cls = _KINDS[data["kind"]]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {"kind"})
    if unknown:
        raise ValueError(f"optimizer state of kind {data['kind']!r} has unknown fields {unknown}")
    values: dict[str, Any] = {}
    for name in names & set(data):
        value = data[name]
        if name == "steps":
            values[name] = int(value)
        elif value is not None:
            arr = np.array(value, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"optimizer state field {name!r} must be a 1-D array, "
                                 f"got shape {arr.shape}")
            values[name] = arr
    return cls(**values)
