"""A small in-process federated loop over any strategy and backend.

It plays coordinator and clients in one process: samples clients, runs their
``fit``, drives the backend's sans-IO sessions (every message through the wire
codec), drops the clients a dropout schedule says vanish, and hands the aggregate to
the strategy; then the same for evaluation. Tests and examples use it; deployments
use :mod:`transport`, which follows the same steps (see :class:`~secagg.EvaluatingStrategy`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Protocol, cast

import numpy as np

from secagg._backend import AggregateResult, Backend, ClientSession
from secagg._errors import RecoveryError
from secagg._plain import PlainBackend
from secagg._simulate import drive
from secagg._strategy import (
    BackendStrategy,
    Config,
    EvaluateResult,
    EvaluatingStrategy,
    Parameters,
    SampleObserver,
    SamplingStrategy,
    Scalar,
    Strategy,
    apply_update_transforms,
    client_weight,
    evaluation_dim,
    evaluation_vector,
    fit_dim,
    flatten,
)

__all__ = [
    "FederatedClient",
    "RoundLog",
    "run_federated",
    "aggregate_inprocess",
    "backend_for",
    "num_clients_to_sample",
]


class FederatedClient(Protocol):
    """What a client does: train and evaluate on its own data (``evaluate`` is optional:
    a client without it is left out of federated evaluation)."""

    def fit(
        self, parameters: Parameters, config: Config
    ) -> tuple[Parameters, float, Mapping[str, Scalar]]: ...

    def evaluate(
        self, parameters: Parameters, config: Config
    ) -> tuple[float, float, Mapping[str, Scalar]]: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoundLog:
    """What happened in one round: who was sampled, whose update is in the sum
    (``contributors``) and whose is not (``dropped``), and the evaluations."""

    server_round: int
    sampled: tuple[int, ...]
    contributors: tuple[int, ...]
    dropped: tuple[int, ...]
    federated_evaluation: EvaluateResult | None = None
    server_evaluation: EvaluateResult | None = None
    failure: str | None = None


def aggregate_inprocess(
    backend: Backend,
    inputs: Mapping[int, tuple[np.ndarray, float]],
    *,
    round_id: int,
    dim: int,
    rng: np.random.Generator,
    drop_after: Mapping[int, int] | None = None,
) -> AggregateResult:
    """Run one aggregation over ``inputs`` (client id -> (vector, weight)).

    ``drop_after[c] = m`` makes client ``c`` vanish after answering ``m`` messages.
    """
    limits = dict(drop_after or {})
    ids = tuple(sorted(inputs))
    server = backend.server_session(round_id=round_id, client_ids=ids, dim=dim, rng=rng)
    sessions: dict[int, ClientSession] = {
        cid: backend.client_session(client_id=cid, vector=v, weight=w, rng=rng)
        for cid, (v, w) in inputs.items()
    }
    answered = dict.fromkeys(ids, 0)

    def vanishes(cid: int, stage: str) -> bool:
        if answered[cid] >= limits.get(cid, 1 << 30):
            return True
        answered[cid] += 1
        return False

    return drive(server, sessions, vanishes=vanishes)


def _child(rng: np.random.Generator) -> np.random.Generator:
    """A generator for one aggregation, so that backends do not shift the schedule."""
    return np.random.default_rng(int(rng.integers(1 << 62)))


def _warn_overweight(backend: Backend, inputs: Mapping[int, tuple[np.ndarray, float]],
                     server_round: int, what: str) -> None:
    """Warn about clients whose weight the backend will refuse (SecAgg+'s ``max_weight``):
    they count as dropped, so the result is not the weighted mean of everyone's."""
    limit = getattr(backend, "max_weight", None)
    if not isinstance(limit, int):
        return
    heavy = sorted(c for c, (_, weight) in inputs.items() if weight > limit)
    if heavy:
        warnings.warn(
            f"round {server_round} ({what}): clients {heavy} weigh more than the backend's "
            f"max_weight {limit}; SecAgg+ refuses their inputs and they count as dropped. "
            "Raise SecureAggregation(max_weight=...) to the largest number of examples "
            "(and modulus_bits=64 for precision)", stacklevel=3)


def backend_for(
    strategy: Strategy, default: Backend, server_round: int, n: int, purpose: str
) -> Backend:
    """The backend of one aggregation: ``strategy.backend(...)`` for a
    :class:`BackendStrategy` (``None`` there means ``default``), else ``default``."""
    if isinstance(strategy, BackendStrategy):
        chosen = strategy.backend(server_round=server_round, num_clients=n, purpose=purpose)
        if chosen is not None:
            return chosen
    return default


def num_clients_to_sample(strategy: Strategy, num_available: int, *, fit: bool) -> int:
    """How many of ``num_available`` clients to sample: a :class:`SamplingStrategy`
    decides; otherwise all of them for fit and none for evaluation."""
    if isinstance(strategy, SamplingStrategy):
        if fit:
            return strategy.num_fit_clients(num_available)
        return strategy.num_evaluate_clients(num_available)
    return num_available if fit else 0


def _sample(strategy: Strategy, ids: list[int], rng: np.random.Generator, *, fit: bool) -> list[int]:
    n = num_clients_to_sample(strategy, len(ids), fit=fit)
    return sorted(int(c) for c in rng.choice(ids, size=n, replace=False)) if n else []


def run_federated(
    strategy: Strategy,
    clients: Mapping[int, FederatedClient],
    parameters: Parameters,
    *,
    rounds: int,
    rng: np.random.Generator,
    default_backend: Backend | None = None,
    dropout_rate: float = 0.0,
    max_drop_after: int = 3,
) -> tuple[Parameters, list[RoundLog]]:
    """Train for ``rounds`` rounds; return the final parameters and a log per round.

    Each sampled client independently drops with probability ``dropout_rate`` after
    answering a uniform number of messages in ``[0, max_drop_after]`` (0: it never
    sends its update). A round whose aggregation cannot recover (too many dropouts for
    the threshold) fails: it is logged with its ``failure`` and the model is unchanged.
    A strategy whose ``configure_fit`` raises an error marked ``stops_training`` (a DP
    budget that the next round would exceed, :class:`dp.BudgetExceededError`) ends
    training there: the parameters so far and the logs are returned. Other errors
    propagate.

    Raises:
        ValueError: ``rounds`` < 1 or ``dropout_rate`` outside [0, 1).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    # PlainBackend's frozen ``name`` is read-only, which mypy does not match to
    # Backend's plain attribute; the protocol is otherwise satisfied.
    default = default_backend or cast(Backend, PlainBackend())
    ids = sorted(clients)
    logs: list[RoundLog] = []
    for server_round in range(1, rounds + 1):
        sampled = _sample(strategy, ids, rng, fit=True)
        if not sampled:
            raise ValueError(f"round {server_round}: the strategy samples no client of {len(ids)}")
        try:
            config = strategy.configure_fit(server_round, parameters)
            if isinstance(strategy, SampleObserver):
                strategy.fit_sampled(server_round, num_available=len(ids),
                                     num_sampled=len(sampled))
        except Exception as exc:
            if getattr(exc, "stops_training", False):  # a DP budget: keep the model, stop
                break
            raise
        old = flatten(parameters)
        inputs: dict[int, tuple[np.ndarray, float]] = {}
        for cid in sampled:
            new, num_examples, _ = clients[cid].fit([p.copy() for p in parameters], config)
            update = apply_update_transforms(flatten(new) - old, config, rng)
            inputs[cid] = (update, client_weight(num_examples, config))
        drops = {c: int(rng.integers(0, max_drop_after + 1))
                 for c in sampled if rng.random() < dropout_rate}
        backend = backend_for(strategy, default, server_round, len(sampled), "fit")
        _warn_overweight(backend, inputs, server_round, "fit")
        try:
            result = aggregate_inprocess(backend, inputs, round_id=2 * server_round,
                                         dim=fit_dim(parameters, config), rng=_child(rng),
                                         drop_after=drops)
        except RecoveryError as exc:  # too many dropouts: the round fails, the model stays
            logs.append(RoundLog(server_round=server_round, sampled=tuple(sampled),
                                 contributors=(), dropped=tuple(sampled), failure=str(exc)))
            continue
        parameters = strategy.aggregate_fit(server_round, parameters, result)
        fed_eval, server_eval = _evaluate(strategy, clients, parameters, server_round,
                                          rng=rng, ids=ids, default=default)
        left_out = tuple(sorted(set(sampled) - set(result.contributors)))
        logs.append(RoundLog(server_round=server_round, sampled=tuple(sampled),
                             contributors=result.contributors, dropped=left_out,
                             federated_evaluation=fed_eval, server_evaluation=server_eval))
    return parameters, logs


def _evaluate(
    strategy: Strategy,
    clients: Mapping[int, FederatedClient],
    parameters: Parameters,
    server_round: int,
    *,
    rng: np.random.Generator,
    ids: list[int],
    default: Backend,
) -> tuple[EvaluateResult | None, EvaluateResult | None]:
    if not isinstance(strategy, EvaluatingStrategy):
        return None, None
    server_eval = strategy.evaluate(server_round, parameters)
    config = strategy.configure_evaluate(server_round, parameters)
    sampled = _sample(strategy, ids, rng, fit=False) if config is not None else []
    if config is None or not sampled:
        return None, server_eval
    inputs: dict[int, tuple[np.ndarray, float]] = {}
    for cid in sampled:
        if not callable(getattr(clients[cid], "evaluate", None)):
            continue  # no evaluate: left out, as the gRPC client runtime does
        loss, num_examples, metrics = clients[cid].evaluate([p.copy() for p in parameters], config)
        vector = apply_update_transforms(evaluation_vector(loss, metrics, config), config, rng)
        inputs[cid] = (vector, client_weight(float(num_examples), config))
    if not inputs:
        return None, server_eval
    backend = backend_for(strategy, default, server_round, len(sampled), "evaluate")
    _warn_overweight(backend, inputs, server_round, "evaluate")
    result = aggregate_inprocess(backend, inputs, round_id=2 * server_round + 1,
                                 dim=evaluation_dim(config), rng=_child(rng))
    return strategy.aggregate_evaluate(server_round, parameters, result), server_eval
