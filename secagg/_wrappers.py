"""Strategy wrappers: a base that forwards the whole contract, and secure aggregation.

A wrapper is a strategy around a strategy. It forwards every call of the contract and
of its optional extensions (sampling, backend, evaluation) to the strategy it wraps,
and changes only what it is about. Wrappers compose: ``SecureAggregation(
ClientSideFixedClipping(FedAvg(...), ...))`` clips on the clients, sums under SecAgg+,
adds noise on the server and averages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

from secagg._backend import AggregateResult, Backend
from secagg._errors import ConfigurationError
from secagg._flower import needs_individual_results
from secagg._secaggplus import SecAggPlusBackend
from secagg._strategy import (
    BackendStrategy,
    Config,
    EvaluateResult,
    EvaluatingStrategy,
    Parameters,
    SampleObserver,
    SamplingStrategy,
    StatefulStrategy,
    Strategy,
    StrategyState,
    check_state_type,
)

__all__ = ["StrategyWrapper", "SecureAggregation", "innermost"]


def _refuse_raw_flower(wrapper: object, strategy: object) -> None:
    """A Flower strategy passed directly: say why it cannot work on a sum (median, Krum,
    ...) or how to wrap it (FedAvg family)."""
    if type(strategy).__module__.split(".")[0] != "flwr":
        return
    name = type(strategy).__name__
    if needs_individual_results(strategy):
        raise ConfigurationError(
            f"{type(wrapper).__name__} cannot wrap Flower's {name}: it compares the clients' "
            "results one by one (a median, Krum, trimmed mean, ...), but blindsum's strategies "
            "see only the sum of the updates, and under secure aggregation nobody sees more; "
            "use a FedAvg-family strategy, or run it without secure aggregation"
        )
    raise TypeError(
        f"strategy must implement secagg.Strategy, got Flower's {name}: a Flower "
        f"FedAvg-family strategy runs inside secagg.FlowerStrategy, as in "
        f"{type(wrapper).__name__}(secagg.FlowerStrategy(strategy), ...)"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class StrategyWrapper:
    """Forwards the Strategy contract and its optional extensions to ``strategy``.

    Where the wrapped strategy lacks an extension the wrapper answers neutrally:
    sample every available client, no federated or server evaluation, the
    coordinator's default backend.

    Raises:
        TypeError: ``strategy`` does not implement :class:`~secagg.Strategy` (a Flower
            strategy: the message says to wrap it in :class:`~secagg.FlowerStrategy`).
        ConfigurationError: ``strategy`` is a Flower strategy that needs each client's
            result (median, Krum, trimmed mean, ...).
    """

    needs_individual_updates: ClassVar[bool] = False

    strategy: Strategy

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            _refuse_raw_flower(self, self.strategy)
            raise TypeError(
                f"strategy must implement secagg.Strategy (configure_fit, aggregate_fit, "
                f"needs_individual_updates), got {type(self.strategy).__name__}"
            )

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        return self.strategy.configure_fit(server_round, parameters)

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        return self.strategy.aggregate_fit(server_round, parameters, aggregate)

    def num_fit_clients(self, num_available: int) -> int:
        if isinstance(self.strategy, SamplingStrategy):
            return self.strategy.num_fit_clients(num_available)
        return num_available

    def num_evaluate_clients(self, num_available: int) -> int:
        if isinstance(self.strategy, SamplingStrategy):
            return self.strategy.num_evaluate_clients(num_available)
        return 0

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None:
        if isinstance(self.strategy, BackendStrategy):
            return self.strategy.backend(server_round=server_round, num_clients=num_clients,
                                         purpose=purpose)
        return None

    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None:
        if isinstance(self.strategy, EvaluatingStrategy):
            return self.strategy.configure_evaluate(server_round, parameters)
        return None

    def aggregate_evaluate(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> EvaluateResult:
        if not isinstance(self.strategy, EvaluatingStrategy):
            raise ConfigurationError(
                f"{type(self.strategy).__name__} does not evaluate (no aggregate_evaluate)"
            )
        return self.strategy.aggregate_evaluate(server_round, parameters, aggregate)

    def evaluate(self, server_round: int, parameters: Parameters) -> EvaluateResult | None:
        if isinstance(self.strategy, EvaluatingStrategy):
            return self.strategy.evaluate(server_round, parameters)
        return None

    def fit_sampled(self, server_round: int, *, num_available: int, num_sampled: int) -> None:
        if isinstance(self.strategy, SampleObserver):
            self.strategy.fit_sampled(server_round, num_available=num_available,
                                      num_sampled=num_sampled)

    def state_dict(self) -> StrategyState:
        """``{"type": ..., "strategy": <the wrapped strategy's state or None>}``;
        wrappers with state of their own add it."""
        inner = self.strategy.state_dict() if isinstance(self.strategy, StatefulStrategy) else None
        return {"type": type(self).__name__, "strategy": inner}

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore :meth:`state_dict`'s state, the wrapped strategy's included.

        Raises:
            ValueError: the state was written by another stack of strategies.
        """
        check_state_type(state, self)
        inner = state.get("strategy")
        if isinstance(self.strategy, StatefulStrategy):
            if inner is None:
                raise ValueError(f"strategy state of {type(self).__name__} holds no state for "
                                 f"the wrapped {type(self.strategy).__name__}")
            self.strategy.load_state_dict(inner)
        elif inner is not None:
            raise ValueError(f"strategy state of {type(self).__name__} holds a state for a "
                             f"wrapped {inner.get('type')!r}, but "
                             f"{type(self.strategy).__name__} keeps none")


def innermost(strategy: Strategy) -> Strategy:
    """The strategy at the centre of a stack of wrappers."""
    while isinstance(strategy, StrategyWrapper):
        strategy = strategy.strategy
    return strategy


def _refusal(strategy: Strategy) -> str | None:
    """Why ``strategy`` (or anything it wraps) cannot run on a sum, or ``None``."""
    current: Strategy | None = strategy
    while current is not None:
        if getattr(current, "needs_individual_updates", False):
            why = getattr(current, "secure_aggregation_refusal", None)
            return why or (
                f"{type(current).__name__} needs each client's update (needs_individual_updates"
                " is True: a median, Krum or trimmed mean compares updates one by one), but "
                "secure aggregation reveals only their sum; use FedAvg-family strategies "
                "under SecureAggregation, or drop SecureAggregation and trust the server"
            )
        current = current.strategy if isinstance(current, StrategyWrapper) else None
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class SecureAggregation(StrategyWrapper):
    """Collect every round's updates (and evaluation results) through SecAgg+.

    The server learns only the weighted sum of the surviving clients' inputs, never one
    client's update or metrics. The wrapped strategy is unchanged: FedAvg under
    ``SecureAggregation`` computes what plain FedAvg computes, up to quantisation.

    Args:
        strategy: any strategy that works on sums (``needs_individual_updates`` False,
            and so for everything it wraps).
        num_neighbours: ``k``, each client's number of neighbours in the masking graph
            (Bell et al. 2020); ``None`` asks :func:`secagg.find_parameters` for the
            smallest ``k`` that meets the security and correctness targets for the
            sampled number of clients, ``dropout_rate`` and ``corruption_rate``.
        threshold: ``t``, shares needed to reconstruct a secret; ``None``: the finder's
            (or, with an explicit ``num_neighbours``, the backend's strict majority).
        dropout_rate: fraction of sampled clients expected to vanish mid-round.
        corruption_rate: fraction of clients that may collude with the server.
        threat: ``"semi-honest"`` or ``"semi-malicious"`` server, for the finder.
        clipping_range: each coordinate is clipped to ``[-clipping_range,
            clipping_range]`` before quantisation.
        max_weight: the largest client weight (its number of examples, an integer); 1
            when a DP wrapper makes every weight 1.
        modulus_bits: bits of the modular arithmetic of the updates (16, 32 or 64).
        evaluation_range: bound on ``|loss|`` and ``|metric|`` values; evaluation sums
            use 64-bit words, so precision is not a concern there.

    Raises:
        ConfigurationError: the strategy (or one it wraps) needs individual updates, or
            a parameter is out of range (the message names it and its rule).

    Notes:
        - Secure aggregation hides individual updates from the server, but not the
          sum: a sum over few clients, or a strategy that samples one client, reveals
          much. Pair it with differential privacy (client-side clipping with noise
          after aggregation, or distributed DP) when the sum itself must not leak.
        - Larger ``num_neighbours`` tolerates more dropouts and collusion at a cost
          of ``O(k)`` work per client; a larger ``threshold`` protects against more
          colluding clients but fails the round when fewer than ``threshold`` of a
          client's ``k + 1`` shares survive. Leave both to the finder (which targets
          ``dropout_rate`` and ``corruption_rate``) unless you know why; if more clients
          drop than ``dropout_rate`` planned for, rounds fail rather than leak.
        - Robust aggregation (median, Krum, trimmed mean) compares individual updates
          and is refused: robustness to poisoned updates and secrecy of updates pull
          in opposite directions here.
        - ``clipping_range`` too small distorts updates (they are clipped per
          coordinate); too large loses precision: each coordinate of the mean update is
          off by at most ``1 / scale`` with ``scale ~ 2^(modulus_bits - 1) /
          (clients * max_weight * clipping_range)``; raise ``modulus_bits`` to 64 for
          large ``max_weight`` (uploads then take 8 bytes per coordinate).
        - Federated evaluation results pass through the same backend, so per-client
          losses and metrics are hidden too; they must also fit ``clipping_range``.
    """

    _: dataclasses.KW_ONLY
    num_neighbours: int | None = None
    threshold: int | None = None
    dropout_rate: float = 0.1
    corruption_rate: float = 0.05
    threat: str = "semi-honest"
    clipping_range: float = 8.0
    max_weight: int = 1024
    modulus_bits: int = 32
    evaluation_range: float = 1e4

    def __post_init__(self) -> None:
        StrategyWrapper.__post_init__(self)
        why = _refusal(self.strategy)
        if why is not None:
            raise ConfigurationError(f"SecureAggregation cannot wrap this strategy: {why}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigurationError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if not 0.0 <= self.corruption_rate < 1.0:
            raise ConfigurationError(
                f"corruption_rate must be in [0, 1), got {self.corruption_rate}"
            )
        if not self.clipping_range > 0:
            raise ConfigurationError(
                f"clipping_range must be positive, got {self.clipping_range}"
            )
        if not self.evaluation_range > 0:
            raise ConfigurationError(
                f"evaluation_range must be positive, got {self.evaluation_range}"
            )
        if self.modulus_bits not in (16, 32, 64):
            raise ConfigurationError(f"modulus_bits must be 16, 32 or 64, got {self.modulus_bits}")
        if self.max_weight < 1:
            raise ConfigurationError(f"max_weight must be at least 1, got {self.max_weight}")
        if self.num_neighbours is not None and self.num_neighbours < 1:
            raise ConfigurationError(
                f"num_neighbours must be at least 1, got {self.num_neighbours}"
            )
        if self.threshold is not None and self.threshold < 2:
            raise ConfigurationError(
                f"threshold must be at least 2 (one share would be the secret), got {self.threshold}"
            )
        tell = _find_hook(self.strategy, "use_secure_aggregation")
        if tell is not None:  # distributed DP accounts with the threshold the rounds use
            k = self.num_neighbours
            tell(neighbours="all" if k is None else k, threshold=self.threshold,
                 dropout=self.dropout_rate)

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None:
        """The SecAgg+ backend for ``num_clients`` sampled clients.

        Raises:
            ConfigurationError: no ``k`` and ``t`` meet the targets for this many clients,
                or the explicit ones do not fit (for example ``threshold > k + 1``).
        """
        hook = _find_hook(self.strategy, "secure_fit_backend")
        if hook is not None and purpose == "fit":  # distributed DP: its encoding, our settings
            k = self.num_neighbours
            backend: Backend = hook(num_clients=num_clients, neighbours="all" if k is None else k,
                                    threshold=self.threshold, dropout=self.dropout_rate)
            return backend
        inner = StrategyWrapper.backend(self, server_round=server_round,
                                        num_clients=num_clients, purpose=purpose)
        if inner is not None and hook is None:
            raise ConfigurationError(
                f"the wrapped strategy asks for backend {getattr(inner, 'name', inner)!r}, but "
                "SecureAggregation decides the backend; do not stack two backend choices"
            )
        return _secagg_plus(self, num_clients, purpose)


def _find_hook(strategy: Strategy, name: str) -> Callable[..., Backend] | None:
    """The first wrapped strategy's method ``name`` (for example a distributed-DP
    wrapper's ``secure_fit_backend``), or ``None``."""
    current: Strategy | None = strategy
    while current is not None:
        hook = getattr(current, name, None)
        if callable(hook):
            return hook
        current = current.strategy if isinstance(current, StrategyWrapper) else None
    return None


def _uniform_weights(strategy: Strategy) -> bool:
    current: Strategy | None = strategy
    while current is not None:
        if getattr(current, "uniform_weights", False):
            return True
        current = current.strategy if isinstance(current, StrategyWrapper) else None
    return False


def _secagg_plus(wrapper: SecureAggregation, num_clients: int, purpose: str) -> Backend:
    """The SecAgg+ backend; with ``num_neighbours=None`` it asks the parameter finder
    (:func:`secagg.find_parameters`) for ``k`` and ``t`` for the round's n."""
    if purpose == "evaluate":
        # [loss, metrics...] is tiny: 64-bit words cost nothing and keep full precision
        clip, max_weight, bits = wrapper.evaluation_range, wrapper.max_weight, 64
    else:
        clip, bits = wrapper.clipping_range, wrapper.modulus_bits
        max_weight = 1 if _uniform_weights(wrapper.strategy) else wrapper.max_weight
    return SecAggPlusBackend(
        neighbours=wrapper.num_neighbours, threshold=wrapper.threshold,
        dropout=wrapper.dropout_rate, corrupt=wrapper.corruption_rate, threat=wrapper.threat,
        clip=clip, max_weight=max_weight, modulus_bits=bits,
    )
