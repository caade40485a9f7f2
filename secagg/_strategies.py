"""FedAvg-family strategies over aggregates: FedAvg, FedAvgM, FedProx, FedAdam,
FedYogi, FedAdagrad; and FedMedian / FedTrimmedAvg, which need individual updates.

Every strategy is a frozen dataclass of its settings (client sampling, server
learning rate, evaluation metrics, config functions). Optimiser state, where there
is one, lives in a private mutable cell: call :meth:`FedAvg.reset` to start over.

The update a strategy applies is the *mean client update*
``aggregate.weighted_sum / aggregate.total_weight``, where each client's update is
``new - old`` and its weight its number of examples (or 1 under DP wrappers). So
``FedAvg(server_learning_rate=1.0)`` sets the model to the weighted mean of the
clients' models, as McMahan et al. (2017) do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import numpy as np

from secagg import _optim
from secagg._backend import AggregateResult, Backend
from secagg._collect import CollectingBackend, IndividualAggregate
from secagg._errors import ConfigurationError
from secagg._strategy import (
    METRICS_KEY,
    Config,
    EvaluateResult,
    Parameters,
    Scalar,
    StrategyState,
    check_state_type,
    evaluation_means,
    flatten,
    unflatten,
)

__all__ = [
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedAdam",
    "FedYogi",
    "FedAdagrad",
    "FedMedian",
    "FedTrimmedAvg",
]

ConfigFn = Callable[[int], Mapping[str, Scalar]]
EvaluateFn = Callable[[int, Parameters], "tuple[float, Mapping[str, float]] | None"]


class _Cell:
    """Mutable optimiser state held by a frozen strategy."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None


def _user_config(fn: ConfigFn | None, server_round: int, what: str) -> dict[str, Scalar]:
    config = dict(fn(server_round)) if fn is not None else {}
    reserved = sorted(k for k in config if k.startswith("blindsum."))
    if reserved:
        raise ValueError(f"{what} must not set reserved 'blindsum.' keys, got {reserved}")
    return config


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedAvg:
    """Federated averaging (McMahan et al. 2017) with a server learning rate.

    Sampling: ``max(int(fraction * available), min_clients)`` clients, capped at the
    number available, and none until ``min_available_clients`` are connected.
    Evaluation: clients report ``loss`` and the metrics named in ``metrics``; both are
    averaged weighted by examples (through secure aggregation when wrapped).
    ``evaluate_fn(server_round, parameters) -> (loss, metrics) | None`` evaluates on
    the server. ``on_fit_config_fn(server_round)`` and ``on_evaluate_config_fn``
    add settings (learning rate, epochs) to the clients' configs.

    Raises:
        ValueError: a fraction outside [0, 1], a minimum below its floor, a
            non-positive learning rate, or a metric name with a comma.
    """

    needs_individual_updates: ClassVar[bool] = False

    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    min_fit_clients: int = 2
    min_evaluate_clients: int = 2
    min_available_clients: int = 2
    server_learning_rate: float = 1.0
    metrics: tuple[str, ...] = ()
    on_fit_config_fn: ConfigFn | None = None
    on_evaluate_config_fn: ConfigFn | None = None
    evaluate_fn: EvaluateFn | None = None
    _cell: _Cell = dataclasses.field(default_factory=_Cell, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("fraction_fit", "fraction_evaluate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name, floor in (("min_fit_clients", 1), ("min_evaluate_clients", 0),
                            ("min_available_clients", 1)):
            if int(getattr(self, name)) < floor:
                raise ValueError(f"{name} must be at least {floor}, got {getattr(self, name)}")
        if not self.server_learning_rate > 0:
            raise ValueError(
                f"server_learning_rate must be positive, got {self.server_learning_rate}"
            )
        object.__setattr__(self, "metrics", tuple(self.metrics))
        bad = [m for m in self.metrics if not m or "," in m or m != m.strip()]
        if bad:
            raise ValueError(f"metrics must be non-empty names without commas, got {bad}")

    # -- sampling ---------------------------------------------------------------------
    def num_fit_clients(self, num_available: int) -> int:
        """Clients to sample for training (0 until ``min_available_clients`` and
        ``min_fit_clients`` are available)."""
        if num_available < max(self.min_available_clients, self.min_fit_clients):
            return 0
        return min(max(int(num_available * self.fraction_fit), self.min_fit_clients),
                   num_available)

    def num_evaluate_clients(self, num_available: int) -> int:
        """Clients to sample for evaluation (0: skip federated evaluation)."""
        floor = max(self.min_available_clients, self.min_evaluate_clients)
        if self.fraction_evaluate == 0.0 or num_available < floor:
            return 0
        n = max(int(num_available * self.fraction_evaluate), self.min_evaluate_clients)
        return min(n, num_available)

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None:
        """``None``: the coordinator's default backend will do."""
        return None

    # -- fit ----------------------------------------------------------------------------
    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        return _user_config(self.on_fit_config_fn, server_round, "on_fit_config_fn")

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        """Apply the mean update; with no contributor the parameters are unchanged."""
        x = flatten(parameters)
        if aggregate.total_weight <= 0 or not aggregate.contributors:
            return unflatten(x, parameters)
        delta = self._mean_update(aggregate, x.shape[0])
        return unflatten(self._step(x, delta), parameters)

    def reset(self) -> None:
        """Forget optimiser state (momentum, moment estimates)."""
        self._cell.state = None

    def state_dict(self) -> StrategyState:
        """The optimiser state to restore after a restart (see :class:`secagg.StatefulStrategy`)."""
        return {"type": type(self).__name__, "optimizer": _optim.state_to_dict(self._cell.state)}

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore :meth:`state_dict`'s state.

        Raises:
            ValueError: the state was written by another strategy class, or is malformed.
        """
        check_state_type(state, self)
        self._cell.state = _optim.state_from_dict(state.get("optimizer"))

    def _mean_update(self, aggregate: AggregateResult, dim: int) -> np.ndarray:
        if aggregate.weighted_sum.shape != (dim,):
            raise ValueError(
                f"aggregate must have shape ({dim},) like the parameters, "
                f"got {aggregate.weighted_sum.shape}"
            )
        return aggregate.mean

    def _step(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return x + self.server_learning_rate * delta

    # -- evaluation -------------------------------------------------------------------
    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None:
        if self.fraction_evaluate == 0.0:
            return None
        config: dict[str, Scalar] = _user_config(
            self.on_evaluate_config_fn, server_round, "on_evaluate_config_fn"
        )
        if self.metrics:
            config[METRICS_KEY] = ",".join(self.metrics)
        return config

    def aggregate_evaluate(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> EvaluateResult:
        """Weighted means of ``[loss, *metrics]``; NaN when nobody contributed."""
        mean = evaluation_means(aggregate, self.metrics)
        return EvaluateResult(
            loss=float(mean[0]),
            metrics=dict(zip(self.metrics, (float(v) for v in mean[1:]), strict=True)),
            num_examples=float(aggregate.total_weight),
            num_clients=len(aggregate.contributors),
        )

    def evaluate(self, server_round: int, parameters: Parameters) -> EvaluateResult | None:
        """Server-side evaluation through ``evaluate_fn`` (``None`` without one)."""
        if self.evaluate_fn is None:
            return None
        out = self.evaluate_fn(server_round, parameters)
        if out is None:
            return None
        loss, metrics = out
        return EvaluateResult(loss=float(loss), metrics=metrics)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedAvgM(FedAvg):
    """FedAvg with server momentum (Hsu et al. 2019): ``v <- momentum v + delta``,
    ``x <- x + server_learning_rate v`` (Nesterov optional)."""

    server_momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super(FedAvgM, self).__post_init__()
        if not 0.0 <= self.server_momentum < 1.0:
            raise ValueError(f"server_momentum must be in [0, 1), got {self.server_momentum}")

    def _step(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        state = self._cell.state or _optim.MomentumState()
        x, self._cell.state = _optim.momentum_step(
            x, delta, state, learning_rate=self.server_learning_rate,
            momentum=self.server_momentum, nesterov=self.nesterov,
        )
        return x


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedProx(FedAvg):
    """FedAvg whose clients add ``proximal_mu / 2 * ||w - w_global||^2`` to their loss
    (Li et al. 2020). The server side is FedAvg; clients read ``config["proximal_mu"]``."""

    proximal_mu: float

    def __post_init__(self) -> None:
        super(FedProx, self).__post_init__()
        if not self.proximal_mu >= 0:
            raise ValueError(f"proximal_mu must be non-negative, got {self.proximal_mu}")

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        config = dict(FedAvg.configure_fit(self, server_round, parameters))
        config["proximal_mu"] = float(self.proximal_mu)
        return config


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _FedOpt(FedAvg):
    """Adaptive server optimiser (Reddi et al. 2021); see :func:`secagg._optim.adaptive_step`."""

    _rule: ClassVar[str] = "adam"

    server_learning_rate: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-9
    bias_correction: bool = False

    def __post_init__(self) -> None:
        super(_FedOpt, self).__post_init__()
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau}")

    def _step(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        state = self._cell.state or _optim.AdaptiveState()
        x, self._cell.state = _optim.adaptive_step(
            x, delta, state, rule=self._rule, learning_rate=self.server_learning_rate,
            beta_1=self.beta_1, beta_2=self.beta_2, tau=self.tau,
            bias_correction=self.bias_correction,
        )
        return x


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedAdam(_FedOpt):
    """FedAdam: ``v <- beta_2 v + (1 - beta_2) delta^2`` (Reddi et al. 2021)."""

    _rule: ClassVar[str] = "adam"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedYogi(_FedOpt):
    """FedYogi: ``v <- v - (1 - beta_2) delta^2 sign(v - delta^2)`` (Reddi et al. 2021)."""

    _rule: ClassVar[str] = "yogi"
    server_learning_rate: float = 1e-2
    tau: float = 1e-3


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedAdagrad(_FedOpt):
    """FedAdagrad: ``v <- v + delta^2`` (Reddi et al. 2021); ``beta_1`` defaults to 0."""

    _rule: ClassVar[str] = "adagrad"
    beta_1: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedMedian(FedAvg):
    """Coordinate-wise median of the clients' models (Yin et al. 2018), unweighted.

    Needs each client's update, so it runs only on the ``collect`` backend (a server
    that sees every update in the clear); secure aggregation refuses it.
    """

    needs_individual_updates: ClassVar[bool] = True

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None:
        return cast(Backend, CollectingBackend())

    def _mean_update(self, aggregate: AggregateResult, dim: int) -> np.ndarray:
        return self._robust(_stack(aggregate, type(self).__name__, dim))

    def _robust(self, updates: np.ndarray) -> np.ndarray:
        return np.asarray(np.median(updates, axis=0))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FedTrimmedAvg(FedMedian):
    """Coordinate-wise mean after dropping the ``beta`` fraction of largest and of
    smallest values (Yin et al. 2018). Needs individual updates, like FedMedian."""

    beta: float = 0.2

    def __post_init__(self) -> None:
        super(FedTrimmedAvg, self).__post_init__()
        if not 0.0 <= self.beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {self.beta}")

    def _robust(self, updates: np.ndarray) -> np.ndarray:
        cut = int(self.beta * updates.shape[0])
        ordered = np.sort(updates, axis=0)
        return np.asarray(ordered[cut : updates.shape[0] - cut].mean(axis=0))


def _stack(aggregate: AggregateResult, who: str, dim: int) -> np.ndarray:
    if not isinstance(aggregate, IndividualAggregate):
        raise ConfigurationError(
            f"{who} needs each client's update, but the backend delivered only their sum "
            f"({type(aggregate).__name__}); run it on CollectingBackend, without secure "
            "aggregation"
        )
    updates = np.stack([aggregate.updates[c] for c in aggregate.contributors])
    if updates.shape[1] != dim:
        raise ValueError(f"updates must have length {dim}, got {updates.shape[1]}")
    return updates
