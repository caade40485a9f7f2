"""The Strategy contract: how a round is configured and how an aggregate becomes a model.

A strategy never sees one client's update. Each sampled client runs
``fit(parameters, config) -> (new_parameters, num_examples, metrics)``; its runtime
flattens the *update* ``new - old`` into one float vector, applies the update
transforms the config names (clipping, local noise; see :func:`apply_update_transforms`),
and hands it with weight ``num_examples`` to the aggregation backend. The strategy
receives only the :class:`~secagg.AggregateResult` (weighted sum and total weight
of the updates) and returns the new global parameters.

Configs are flat mappings of scalars, sent to clients as they are. Keys starting with
``"blindsum."`` are reserved for the library (transforms and their parameters).

Optional extensions, each a separate protocol so that a minimal strategy stays minimal
(a coordinator checks them with ``isinstance``):

- :class:`SamplingStrategy`: how many clients to sample for fit and for evaluation.
- :class:`BackendStrategy`: the aggregation backend the strategy requires this round
  (secure aggregation, or individual updates for a trusted server).
- :class:`EvaluatingStrategy`: federated evaluation (clients send ``[loss, metrics...]``
  as one flat vector with weight ``num_examples``, summed by the same backend as the
  updates) and an optional server-side evaluation.
- :class:`StatefulStrategy`: state that must survive a restart (privacy spent,
  adaptive clip, server-optimiser moments), as a :data:`StrategyState`.
- :class:`SampleObserver`: told how many clients were sampled out of how many, before
  the round's updates are aggregated (DP wrappers account the real sampling rate).

What the client runtime must do with a fit config: weight its update with
:func:`client_weight` and transform it with :func:`apply_update_transforms` (which may
append coordinates: the server session's dimension is :func:`fit_dim`). With an
evaluate config: build its input with :func:`evaluation_vector`, weight it with
:func:`client_weight` and transform it with :func:`apply_update_transforms` (DP
wrappers clamp, or noise, evaluation results this way).
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from secagg._backend import AggregateResult, Backend

__all__ = [
    "Parameters",
    "Scalar",
    "Config",
    "Strategy",
    "UpdateTransform",
    "flatten",
    "unflatten",
    "register_update_transform",
    "apply_update_transforms",
    "TRANSFORMS_KEY",
    "METRICS_KEY",
    "WEIGHTING_KEY",
    "SamplingStrategy",
    "BackendStrategy",
    "EvaluatingStrategy",
    "EvaluateResult",
    "client_weight",
    "metric_names",
    "evaluation_dim",
    "evaluation_vector",
    "evaluation_means",
    "EXTRA_COORDINATES_KEY",
    "fit_dim",
    "StrategyState",
    "StatefulStrategy",
    "SampleObserver",
    "check_state_type",
]

Parameters = list[np.ndarray]
Scalar = bool | int | float | str
Config = Mapping[str, Scalar]
#: A strategy's restart state: nested dicts and lists of JSON values and NumPy arrays.
StrategyState = dict[str, Any]
UpdateTransform = Callable[[np.ndarray, Config, np.random.Generator], np.ndarray]

TRANSFORMS_KEY = "blindsum.transforms"
METRICS_KEY = "blindsum.metrics"
WEIGHTING_KEY = "blindsum.weighting"
EXTRA_COORDINATES_KEY = "blindsum.extra_coordinates"
_transforms: dict[str, UpdateTransform] = {}


@runtime_checkable
class Strategy(Protocol):
    """Configures rounds and turns aggregates into new global parameters.

    ``needs_individual_updates`` is ``True`` for strategies (median, Krum, trimmed
    mean) that cannot work on a sum; secure aggregation refuses them.
    """

    needs_individual_updates: ClassVar[bool]

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        """The config every sampled client receives with the parameters this round."""
        ...

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        """New global parameters from the old ones and the aggregate of the updates."""
        ...


@runtime_checkable
class SamplingStrategy(Protocol):
    """A strategy that says how many of the available clients to sample."""

    def num_fit_clients(self, num_available: int) -> int:
        """Clients to sample for training; 0 means wait for more clients."""
        ...

    def num_evaluate_clients(self, num_available: int) -> int:
        """Clients to sample for federated evaluation; 0 means skip it this round."""
        ...


@runtime_checkable
class StatefulStrategy(Protocol):
    """A strategy with state that a restarted coordinator must restore.

    ``state_dict()`` returns a :data:`StrategyState` (JSON values and NumPy arrays,
    with ``"type"`` the class name); ``load_state_dict(state)`` puts a fresh strategy,
    built with the same arguments, back where ``state_dict()`` was called. Wrappers
    nest their inner strategy's state under ``"strategy"``. A coordinator stores the
    state with every checkpoint; a noise generator's state is never part of it (past
    noise must stay secret; a restarted strategy draws fresh noise).
    """

    def state_dict(self) -> StrategyState: ...

    def load_state_dict(self, state: StrategyState) -> None:
        """Raises: ValueError: the state was written by another kind of strategy or is
        malformed (naming what does not fit); the strategy is then unchanged."""
        ...


@runtime_checkable
class SampleObserver(Protocol):
    """A strategy that wants to know how the round's clients were sampled.

    The coordinator calls ``fit_sampled`` after it sampled ``num_sampled`` of
    ``num_available`` connected clients (over-selected ones included) and before
    ``aggregate_fit``. It may raise :class:`dp.BudgetExceededError` (the real sample
    would take epsilon past the budget), which stops training like ``configure_fit``.
    """

    def fit_sampled(self, server_round: int, *, num_available: int, num_sampled: int) -> None: ...


def check_state_type(state: StrategyState, owner: object) -> None:
    """Check that ``state`` is a dict written by ``type(owner)``.

    Raises:
        ValueError: naming the type the state was written by and the one loading it.
    """
    if not isinstance(state, dict):
        raise ValueError(f"strategy state must be a dict, got {type(state).__name__}")
    want = type(owner).__name__
    if state.get("type") != want:
        raise ValueError(f"strategy state was written by {state.get('type')!r}, "
                         f"but {want} is loading it")


@runtime_checkable
class BackendStrategy(Protocol):
    """A strategy that requires a particular aggregation backend.

    The coordinator calls :meth:`backend` once per aggregation with the number of
    sampled clients and ``purpose`` ``"fit"`` (updates) or ``"evaluate"`` (``[loss,
    metrics...]``), and uses the returned backend instead of its default; ``None``
    means "the coordinator's default is fine".
    """

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateResult:
    """A round's evaluation: loss and named metrics (weighted means over examples).

    ``num_examples`` is the total weight behind the means and ``num_clients`` how
    many clients contributed (0 for a server-side evaluation).
    """

    loss: float
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    num_examples: float = 0.0
    num_clients: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "metrics", types.MappingProxyType({k: float(v) for k, v in self.metrics.items()})
        )


@runtime_checkable
class EvaluatingStrategy(Protocol):
    """Federated and server-side evaluation, an optional extension of :class:`Strategy`.

    Per round, after ``aggregate_fit``, the coordinator:

    1. calls ``evaluate(server_round, parameters)`` (server-side; ``None`` = none);
    2. calls ``configure_evaluate(server_round, parameters)``; ``None`` skips federated
       evaluation. Otherwise each sampled client runs ``evaluate(parameters, config) ->
       (loss, num_examples, metrics)`` and submits ``evaluation_vector(loss, metrics,
       config)``, transformed as the config says, with weight ``client_weight(num_examples,
       config)`` to the backend (a session of dimension
       ``evaluation_dim(config)``), exactly as for a fit update;
    3. passes the backend's result to ``aggregate_evaluate``.
    """

    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None: ...

    def aggregate_evaluate(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> EvaluateResult: ...

    def evaluate(self, server_round: int, parameters: Parameters) -> EvaluateResult | None: ...


def client_weight(num_examples: float, config: Config) -> float:
    """The weight a client gives its update: ``num_examples``, or 1 when the config says
    ``"blindsum.weighting": "uniform"`` (DP wrappers do: a weight is unbounded influence).

    Raises:
        ValueError: ``num_examples`` is not positive and finite, or the weighting is unknown.
    """
    weighting = str(config.get(WEIGHTING_KEY, "examples"))
    if not (math.isfinite(num_examples) and num_examples > 0):
        raise ValueError(f"num_examples must be positive and finite, got {num_examples}")
    if weighting == "examples":
        return float(num_examples)
    if weighting == "uniform":
        return 1.0
    raise ValueError(f"config {WEIGHTING_KEY!r} must be 'examples' or 'uniform', got {weighting!r}")


def fit_dim(parameters: Sequence[np.ndarray], config: Config) -> int:
    """The length of a fit input: the parameters' total size plus the coordinates that
    update transforms append (``"blindsum.extra_coordinates"``, for example the
    clipped-or-not bit of adaptive clipping). The server session needs it up front.

    Raises:
        ValueError: the extra count is negative.
    """
    extra = int(config.get(EXTRA_COORDINATES_KEY, 0))
    if extra < 0:
        raise ValueError(f"config {EXTRA_COORDINATES_KEY!r} must be >= 0, got {extra}")
    return sum(int(np.size(a)) for a in parameters) + extra


def metric_names(config: Config) -> tuple[str, ...]:
    """The metric names (comma-separated under ``"blindsum.metrics"``), in order."""
    names = str(config.get(METRICS_KEY, "") or "")
    return tuple(n for n in (n.strip() for n in names.split(",")) if n)


def evaluation_dim(config: Config) -> int:
    """The length of an evaluation vector for this config: 1 (the loss) + metrics."""
    return 1 + len(metric_names(config))


def evaluation_vector(loss: float, metrics: Mapping[str, Scalar], config: Config) -> np.ndarray:
    """A client's evaluation input: ``[loss, metrics[name] for name in metric_names]``.

    Raises:
        ValueError: a metric named by the config is missing, or a value is not finite.
    """
    names = metric_names(config)
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(f"metrics must include {missing} (named by {METRICS_KEY!r})")
    out = np.array([float(loss)] + [float(metrics[n]) for n in names], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("loss and metrics must be finite")
    return out


def evaluation_means(aggregate: AggregateResult, metrics: Sequence[str]) -> np.ndarray:
    """The means of an evaluation aggregate, ``[loss, *metrics]`` (NaN when nobody
    contributed).

    Raises:
        ValueError: the aggregate's length is not ``1 + len(metrics)``.
    """
    dim = 1 + len(metrics)
    if aggregate.weighted_sum.shape != (dim,):
        raise ValueError(
            f"evaluation aggregate must have shape ({dim},) for metrics {tuple(metrics)}, "
            f"got {aggregate.weighted_sum.shape}"
        )
    return aggregate.mean if aggregate.total_weight > 0 else np.full(dim, np.nan)


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate arrays into one flat ``float64`` vector (the order is kept)."""
    sizes = [int(np.size(a)) for a in arrays]
    out = np.empty(sum(sizes), dtype=np.float64)
    offset = 0
    for a, size in zip(arrays, sizes, strict=True):  # one pass per array, no temporaries
        out[offset : offset + size] = np.asarray(a).reshape(-1)
        offset += size
    return out


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> Parameters:
    """Split a flat vector back into arrays shaped and typed like ``like``.

    Raises:
        ValueError: the vector's length is not the total size of ``like``.
    """
    sizes = [int(np.size(a)) for a in like]
    if vector.ndim != 1 or vector.shape[0] != sum(sizes):
        raise ValueError(f"vector must have length {sum(sizes)}, got shape {vector.shape}")
    out: Parameters = []
    offset = 0
    for a, size in zip(like, sizes, strict=True):
        arr = np.asarray(a)
        out.append(vector[offset : offset + size].reshape(arr.shape).astype(arr.dtype))
        offset += size
    return out


def register_update_transform(name: str, transform: UpdateTransform) -> None:
    """Make ``transform`` available to clients whose config lists ``name``.

    Raises:
        ValueError: ``name`` is empty, contains a comma, or is already registered.
    """
    if not name or "," in name:
        raise ValueError(f"transform name must be non-empty without commas, got {name!r}")
    if name in _transforms and _transforms[name] is not transform:
        raise ValueError(f"update transform {name!r} is already registered")
    _transforms[name] = transform


def apply_update_transforms(
    update: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Apply, in order, the transforms named by ``config["blindsum.transforms"]``.

    Raises:
        ValueError: the config names a transform this process does not know.
    """
    names = str(config.get(TRANSFORMS_KEY, "") or "")
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            transform = _transforms[name]
        except KeyError:
            raise ValueError(f"config asks for unknown update transform {name!r}") from None
        update = transform(update, config, rng)
    return update

