"""Run a Flower strategy's server logic on blindsum's aggregate (extra ``flower``).

Flower's FedAvg family (FedAvg, FedAvgM, FedProx, FedAdam, FedYogi, FedAdagrad, ...)
aggregates by a weighted mean of the clients' models, then (for the server
optimisers) takes a step from it. That mean is exactly what blindsum's aggregate
gives: ``old + weighted_sum / total_weight``. :class:`FlowerStrategy` hands Flower
one synthetic result holding that mean with weight ``total_weight``, so Flower's
``aggregate_fit`` computes what it would have computed from the individual results,
without ever seeing one (under :class:`~secagg.SecureAggregation`, nobody does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from secagg._backend import AggregateResult, Backend
from secagg._errors import ConfigurationError
from secagg._strategy import (
    METRICS_KEY,
    Config,
    EvaluateResult,
    Parameters,
    StrategyState,
    check_state_type,
    evaluation_means,
    flatten,
    unflatten,
)

__all__ = ["FlowerStrategy"]

# Optimiser state of Flower's FedOpt family (FedAdam, FedYogi, FedAdagrad) and FedAvgM.
_FLOWER_STATE = ("m_t", "v_t", "momentum_vector")

# Flower strategies that look at results one by one: they cannot run on a sum. The
# XGBoost ones subclass FedAvg but combine serialised trees (bagging, one client's
# model in turn), not a weighted mean of arrays. Subclasses of these are refused too.
_INDIVIDUAL = ("FedMedian", "FedTrimmedAvg", "Krum", "Bulyan", "QFedAvg", "FaultTolerantFedAvg",
               "FedXgbBagging", "FedXgbCyclic", "FedXgbNnAvg")


def needs_individual_results(strategy: object) -> bool:
    """Whether a Flower strategy is, or subclasses, one that needs each client's result."""
    return any(cls.__name__ in _INDIVIDUAL for cls in type(strategy).__mro__)


def _flwr() -> Any:
    try:
        import flwr
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigurationError(
            "FlowerStrategy needs the 'flower' extra: pip install 'blindsum[flower]'"
        ) from exc
    return flwr


def _stub_manager(flwr: Any, num_available: int) -> Any:
    """A Flower ClientManager with ``num_available`` stand-in clients, for configure_*."""
    from flwr.server.client_manager import ClientManager
    from flwr.server.client_proxy import ClientProxy

    class _Proxy(ClientProxy):
        def _no(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("blindsum drives clients itself")

        get_properties = get_parameters = fit = evaluate = reconnect = _no

    class _Manager(ClientManager):
        def __init__(self) -> None:
            self._clients = {str(i): _Proxy(str(i)) for i in range(num_available)}

        def num_available(self) -> int:
            return len(self._clients)

        def register(self, client: Any) -> bool:
            return False

        def unregister(self, client: Any) -> None:
            return None

        def all(self) -> dict[str, Any]:
            return dict(self._clients)

        def wait_for(self, num_clients: int, timeout: int = 0) -> bool:
            return num_clients <= len(self._clients)

        def sample(self, num_clients: int, min_num_clients: int | None = None,
                   criterion: Any = None) -> list[Any]:
            return list(self._clients.values())[:num_clients]

    return _Manager()


@dataclasses.dataclass(frozen=True, slots=True)
class FlowerStrategy:
    """A Flower FedAvg-family strategy as a blindsum strategy.

    Args:
        strategy: an instance of ``flwr.server.strategy.FedAvg`` or a subclass that
            aggregates by weighted mean (FedAvgM, FedProx, FedAdam, FedYogi,
            FedAdagrad). Server optimisers need ``initial_parameters``, as in Flower.
        metrics: names of the evaluation metrics clients report (averaged, weighted
            by examples, like Flower's usual ``evaluate_metrics_aggregation_fn``).

    Raises:
        ConfigurationError: ``flwr`` is not installed, or the strategy is not a
            FedAvg-family one (median, trimmed mean, Krum, Bulyan, q-FedAvg, the
            XGBoost strategies and Flower's own DP wrappers need individual results).

    Notes:
        - Flower's ``fit_metrics_aggregation_fn`` sees no per-client metrics (there
          are none to see); ``evaluate_metrics_aggregation_fn`` is called with one
          already averaged entry, so it must be a weighted mean to mean the same.
        - Use blindsum's DP wrappers around this strategy, not Flower's: theirs need
          each client's result.
    """

    needs_individual_updates: ClassVar[bool] = False

    strategy: Any
    _: dataclasses.KW_ONLY
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        flwr = _flwr()
        fedavg = flwr.server.strategy.FedAvg
        name = type(self.strategy).__name__
        if not isinstance(self.strategy, fedavg) or needs_individual_results(self.strategy):
            raise ConfigurationError(
                f"strategy must be a Flower FedAvg-family strategy that aggregates by "
                f"weighted mean, got {name}: blindsum hands Flower only the mean of the "
                f"updates, never one client's result"
            )
        object.__setattr__(self, "metrics", tuple(self.metrics))

    # -- sampling and backend -------------------------------------------------------------
    def num_fit_clients(self, num_available: int) -> int:
        size, min_available = self.strategy.num_fit_clients(num_available)
        return 0 if num_available < max(min_available, size) else int(size)

    def num_evaluate_clients(self, num_available: int) -> int:
        if self.strategy.fraction_evaluate == 0.0:
            return 0
        size, min_available = self.strategy.num_evaluation_clients(num_available)
        return 0 if num_available < max(min_available, size) else int(size)

    def backend(self, *, server_round: int, num_clients: int, purpose: str = "fit"
                ) -> Backend | None:
        return None

    # -- fit ------------------------------------------------------------------------------
    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        return self._config(self.strategy.configure_fit, server_round, parameters) or {}

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        """Flower's ``aggregate_fit`` on one result: the weighted mean of the models."""
        from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

        if aggregate.total_weight <= 0:
            return parameters
        self._sync_current_model(parameters)
        mean_model = unflatten(flatten(parameters) + aggregate.mean, parameters)
        result = FitRes(status=Status(code=Code.OK, message=""),
                        parameters=ndarrays_to_parameters(mean_model),
                        num_examples=max(1, round(aggregate.total_weight)), metrics={})
        proxy = next(iter(_stub_manager(_flwr(), 1).all().values()))
        new, _ = self.strategy.aggregate_fit(server_round, [(proxy, result)], [])
        if new is None:
            return parameters
        arrays = parameters_to_ndarrays(new)
        return [np.asarray(a).astype(np.asarray(p).dtype) for a, p in zip(arrays, parameters,
                                                                           strict=True)]

    def _sync_current_model(self, parameters: Parameters) -> None:
        """Flower's server optimisers step from a model they keep themselves
        (``current_weights``; FedAvgM's ``initial_parameters``), which a restarted
        coordinator would leave at the initial model: step from the model blindsum
        holds instead (the same one, without a restart)."""
        from flwr.common import ndarrays_to_parameters

        strategy = self.strategy
        if hasattr(strategy, "current_weights"):
            strategy.current_weights = [np.array(p, copy=True) for p in parameters]
        if getattr(strategy, "server_opt", False):
            strategy.initial_parameters = ndarrays_to_parameters(list(parameters))

    # -- restart state ----------------------------------------------------------------------
    def state_dict(self) -> StrategyState:
        """The Flower strategy's optimiser state (``m_t``, ``v_t``, ``momentum_vector``,
        those it has; ``None`` before the first step), for a restarted coordinator."""
        out: dict[str, Any] = {"type": type(self).__name__, "flower": type(self.strategy).__name__}
        for attr in _FLOWER_STATE:
            if hasattr(self.strategy, attr):
                value = getattr(self.strategy, attr)
                out[attr] = None if not value else [np.array(a, copy=True) for a in value]
        return out

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore :meth:`state_dict`'s state (all or nothing).

        Raises:
            ValueError: the state was written for another Flower strategy, or a field is
                unknown or not a list of arrays.
        """
        check_state_type(state, self)
        name = type(self.strategy).__name__
        if state.get("flower") != name:
            raise ValueError(f"strategy state is for Flower's {state.get('flower')!r}, "
                             f"but FlowerStrategy wraps {name}")
        fields = set(state) - {"type", "flower"}
        unknown = sorted(f for f in fields if f not in _FLOWER_STATE
                         or not hasattr(self.strategy, f))
        if unknown:
            raise ValueError(f"strategy state of FlowerStrategy({name}) has unknown fields {unknown}")
        values: dict[str, list[np.ndarray] | None] = {}
        for attr in fields:
            value = state[attr]
            if value is not None and not (isinstance(value, list) and all(
                    isinstance(a, np.ndarray) for a in value)):
                raise ValueError(f"strategy state field {attr!r} must be a list of arrays or None")
            values[attr] = None if value is None else [np.array(a, copy=True) for a in value]
        for attr, arrays in values.items():
            setattr(self.strategy, attr, arrays)

    # -- evaluation -----------------------------------------------------------------------
    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None:
        if self.strategy.fraction_evaluate == 0.0:
            return None
        config = self._config(self.strategy.configure_evaluate, server_round, parameters)
        if config is None:
            return None
        if self.metrics:
            config[METRICS_KEY] = ",".join(self.metrics)
        return config

    def aggregate_evaluate(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> EvaluateResult:
        from flwr.common import Code, EvaluateRes, Status

        mean = evaluation_means(aggregate, self.metrics)
        if aggregate.total_weight <= 0:
            return EvaluateResult(loss=float("nan"), num_clients=0)
        res = EvaluateRes(status=Status(code=Code.OK, message=""), loss=float(mean[0]),
                          num_examples=max(1, round(aggregate.total_weight)),
                          metrics={n: float(v) for n, v in zip(self.metrics, mean[1:], strict=True)})
        proxy = next(iter(_stub_manager(_flwr(), 1).all().values()))
        loss, metrics = self.strategy.aggregate_evaluate(server_round, [(proxy, res)], [])
        if not metrics and self.strategy.evaluate_metrics_aggregation_fn is None:
            metrics = dict(res.metrics)
        return EvaluateResult(
            loss=float("nan") if loss is None else float(loss),
            metrics={k: float(v) for k, v in metrics.items()},
            num_examples=float(aggregate.total_weight), num_clients=len(aggregate.contributors),
        )

    def evaluate(self, server_round: int, parameters: Parameters) -> EvaluateResult | None:
        from flwr.common import ndarrays_to_parameters

        out = self.strategy.evaluate(server_round, ndarrays_to_parameters(parameters))
        if out is None:
            return None
        loss, metrics = out
        return EvaluateResult(loss=float(loss), metrics={k: float(v) for k, v in metrics.items()})

    def _config(self, configure: Callable[..., Any], server_round: int,
                parameters: Parameters) -> dict[str, Any] | None:
        from flwr.common import ndarrays_to_parameters

        pairs = configure(server_round, ndarrays_to_parameters(parameters),
                          _stub_manager(_flwr(), max(self.strategy.min_available_clients, 2)))
        if not pairs:
            return None
        config = dict(pairs[0][1].config)
        reserved = sorted(k for k in config if k.startswith("blindsum."))
        if reserved:
            raise ValueError(f"Flower config must not set reserved 'blindsum.' keys, got {reserved}")
        return config
