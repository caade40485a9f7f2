"""``DistributedDP``: a strategy wrapper whose clients add the noise under SecAgg+.

Composes with :class:`secagg.SecureAggregation` (which then supplies the SecAgg+
settings) or runs alone (complete graph). Each round's release is accounted with the
RDP of the distributed mechanism for the round's number of sampled clients, honest
about dropouts (:func:`dp.distributed_rdp`); epsilon is the RDP composition over the
rounds so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from dp._ddp_backend import DistributedDPBackend
from dp._distributed import distributed_rdp
from dp._errors import BudgetExceededError, DPValueError
from dp._rdp import DEFAULT_ORDERS, rdp_to_epsilon
from dp._wrappers import PrivacyWrapper, check_privacy_arguments
from secagg import (
    AggregateResult,
    Backend,
    Config,
    Parameters,
    StrategyState,
    StrategyWrapper,
    check_state_type,
    fit_dim,
)

__all__ = ["DistributedDP"]


@dataclasses.dataclass
class _RdpLedger:
    total: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(DEFAULT_ORDERS)))
    rounds: int = 0


@dataclasses.dataclass
class _SecAggSettings:
    """The SecAgg+ settings an outer ``SecureAggregation`` runs the rounds with (``None``:
    not wrapped, the complete graph and this wrapper's ``expected_dropout``)."""

    neighbours: int | str | None = None
    threshold: int | None = None
    dropout: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DistributedDP(StrategyWrapper):
    """Distributed DP: clients clip, round and noise their updates before SecAgg+.

    Args:
        strategy: a FedAvg-family strategy (it receives the noisy sum, weight = the
            number of survivors).
        noise_multiplier: z; the sum over the expected survivors has noise of standard
            deviation ``z * clipping_norm``.
        clipping_norm: L2 bound on each client's update.
        clients_per_round: how many clients a round samples (for planning the budget).
        mechanism: ``"dgauss"`` or ``"skellam"``.
        bits: SecAgg+ modulus ``2^bits``; too few for the noise and the number of
            clients is refused with the number that would do.
        expected_dropout: used when not wrapped in ``SecureAggregation`` (which
            supplies its ``dropout_rate``).
        delta, epsilon_budget: the guarantee; ``configure_fit`` raises
            :class:`dp.BudgetExceededError` before a round that would exceed the budget.

    Notes:
        - Nobody, the server included, sees an un-noised sum; but colluding clients
          can subtract their own noise, so the guarantee against a server colluding
          with ``c`` clients is that of ``n - c`` noise shares.
        - The accountant assumes the fewest survivors the threshold allows; by default
          the threshold is the expected number of survivors, so a round with more
          dropouts than planned fails instead of releasing a less noisy sum.
        - No amplification by client sampling is claimed; each round is charged in full.
        - Every client has weight 1 (a weight would scale its sensitivity).
        - Federated evaluation is not run by default (``evaluation="off"``): its
          metrics come from the same private data and no distributed noise is added to
          them. ``evaluation="unprotected"`` runs it under secure aggregation only,
          outside the guarantee; evaluate on the server's own data instead.
    """

    uniform_weights: ClassVar[bool] = True

    _: dataclasses.KW_ONLY
    noise_multiplier: float
    clipping_norm: float
    clients_per_round: int
    mechanism: str = "dgauss"
    bits: int = 20
    expected_dropout: float = 0.0
    delta: float = 1e-5
    epsilon_budget: float | None = None
    evaluation: str = "off"
    _ledger: _RdpLedger = dataclasses.field(default_factory=_RdpLedger, init=False, repr=False,
                                            compare=False)
    _secagg: _SecAggSettings = dataclasses.field(default_factory=_SecAggSettings, init=False,
                                                 repr=False, compare=False)

    def __post_init__(self) -> None:
        StrategyWrapper.__post_init__(self)
        check_privacy_arguments(self)
        if self.clients_per_round < 2:
            raise DPValueError(f"clients_per_round must be >= 2, got {self.clients_per_round}")
        if self.evaluation not in ("off", "unprotected"):
            raise DPValueError(
                f"DistributedDP: evaluation must be 'off' or 'unprotected', got {self.evaluation!r} "
                "(clients do not noise their metrics under distributed DP)")
        current = self.strategy
        while True:
            if getattr(current, "needs_individual_updates", False):
                raise DPValueError(f"DistributedDP noises the sum, but {type(current).__name__} needs "
                                   "individual updates; wrap a FedAvg-family strategy")
            if isinstance(current, PrivacyWrapper):
                raise DPValueError(f"DistributedDP cannot wrap {type(current).__name__}: two DP "
                                   "mechanisms would noise twice and account separately; use one")
            if not isinstance(current, StrategyWrapper):
                break
            current = current.strategy
        self.secure_fit_backend(num_clients=self.clients_per_round, dim=2)  # refuses bad bits early

    # -- the backend ---------------------------------------------------------------------

    def secure_fit_backend(
        self, *, num_clients: int, dim: int | None = None, neighbours: int | str | None = None,
        threshold: int | None = None, dropout: float | None = None,
        identities: Mapping[int, bytes] | None = None,
    ) -> DistributedDPBackend:
        """The distributed-DP SecAgg+ backend (``SecureAggregation`` passes its settings).

        A sparse graph (``neighbours`` below n - 1) is allowed but the accountant then
        assumes only ``threshold`` survivors; the complete graph is the default. Settings
        passed here are remembered (:meth:`use_secure_aggregation`) so that the rounds are
        accounted with the threshold they actually ran with.

        Raises:
            DPValueError: ``bits`` too small for the noise and the number of clients.
        """
        if neighbours is not None or threshold is not None or dropout is not None:
            self.use_secure_aggregation(neighbours=neighbours, threshold=threshold, dropout=dropout)
        backend = DistributedDPBackend(
            mechanism=self.mechanism, noise_multiplier=self.noise_multiplier, clip=self.clipping_norm,
            bits=self.bits, expected_dropout=self.expected_dropout if dropout is None else dropout,
            neighbours=neighbours if neighbours is not None else "all", threshold=threshold,
            identities=identities,
        )
        if dim is not None:
            backend.round_parameters(num_clients=num_clients, dim=dim)
        return backend

    def backend(self, *, server_round: int, num_clients: int, purpose: str = "fit") -> Backend | None:
        if purpose == "fit":
            return self.secure_fit_backend(num_clients=num_clients)
        return StrategyWrapper.backend(self, server_round=server_round, num_clients=num_clients,
                                       purpose=purpose)

    def use_secure_aggregation(self, *, neighbours: int | str | None, threshold: int | None,
                               dropout: float | None) -> None:
        """Account (and check the budget) with these SecAgg+ settings from now on.

        ``SecureAggregation`` calls this when it wraps this strategy, and every round's
        backend passes them again: a threshold below the expected survivors (an explicit
        ``threshold`` or a sparse graph) lets the server release a sum of fewer, less
        noisy inputs, and the accountant must assume that many.
        """
        self._secagg.neighbours, self._secagg.threshold = neighbours, threshold
        self._secagg.dropout = dropout

    # -- accounting ----------------------------------------------------------------------

    @property
    def rounds_accounted(self) -> int:
        return self._ledger.rounds

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta`."""
        return self._epsilon(self._ledger.total) if self._ledger.rounds else 0.0

    def state_dict(self) -> StrategyState:
        """The RDP spent (at ``dp.DEFAULT_ORDERS``), the rounds accounted and the wrapped
        strategy's state."""
        return StrategyWrapper.state_dict(self) | {
            "orders": [float(a) for a in DEFAULT_ORDERS],
            "rdp": [float(x) for x in self._ledger.total], "rounds": int(self._ledger.rounds)}

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore :meth:`state_dict`'s state (all of it, or nothing on error).

        Raises:
            ValueError: another stack of strategies wrote it, the orders differ from
                ``dp.DEFAULT_ORDERS``, or the RDP curve is not finite and >= 0.
        """
        check_state_type(state, self)
        orders = [float(a) for a in DEFAULT_ORDERS]
        if state.get("orders") != orders:
            raise DPValueError("strategy state was accounted at other RDP orders than "
                               "dp.DEFAULT_ORDERS; it cannot be continued")
        total = np.array(state.get("rdp"), dtype=np.float64)
        rounds = state.get("rounds")
        if total.shape != (len(orders),) or not np.all(total >= 0):  # NaN fails, inf is fine
            raise DPValueError(f"strategy state's rdp must be {len(orders)} values >= 0")
        if not isinstance(rounds, int) or rounds < 0:
            raise DPValueError(f"strategy state's rounds must be an int >= 0, got {rounds!r}")
        StrategyWrapper.load_state_dict(self, state)
        self._ledger.total, self._ledger.rounds = total, rounds

    def round_rdp(self, *, num_clients: int, dim: int) -> np.ndarray:
        """The RDP curve (at ``dp.DEFAULT_ORDERS``) of one round of ``num_clients``, with
        the SecAgg+ settings the rounds run with (those of an outer ``SecureAggregation``)."""
        s = self._secagg
        backend = self.secure_fit_backend(num_clients=num_clients, neighbours=s.neighbours,
                                          threshold=s.threshold, dropout=s.dropout)
        _, cfg = backend.round_parameters(num_clients=num_clients, dim=dim)
        return distributed_rdp(cfg, orders=np.array(DEFAULT_ORDERS))

    def _epsilon(self, rdp: np.ndarray) -> float:
        eps, _ = rdp_to_epsilon(np.array(DEFAULT_ORDERS), rdp, self.delta)
        return float(eps)

    # -- the contract ---------------------------------------------------------------------

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        """The inner config, plus the public parameters of every client's encoding (a
        client runtime holding a :class:`DistributedDPBackend` checks them)."""
        config = dict(self.strategy.configure_fit(server_round, parameters))
        config.update(DistributedDPBackend(
            mechanism=self.mechanism, noise_multiplier=self.noise_multiplier,
            clip=self.clipping_norm, bits=self.bits).fit_config())
        if self.epsilon_budget is not None:
            after = self._epsilon(self._ledger.total + self.round_rdp(
                num_clients=self.clients_per_round, dim=fit_dim(parameters, config)))
            if after > self.epsilon_budget:
                raise BudgetExceededError(epsilon=self.epsilon_budget, delta=self.delta,
                                          spent_epsilon=after)
        return config

    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None:
        if self.evaluation == "off":
            return None
        return StrategyWrapper.configure_evaluate(self, server_round, parameters)

    def aggregate_fit(self, server_round: int, parameters: Parameters,
                      aggregate: AggregateResult) -> Parameters:
        sampled = len(aggregate.contributors) + len(aggregate.dropped)
        dim = int(aggregate.weighted_sum.shape[0])
        self._ledger.total = self._ledger.total + self.round_rdp(num_clients=max(sampled, 2), dim=dim)
        self._ledger.rounds += 1
        return self.strategy.aggregate_fit(server_round, parameters, aggregate)
