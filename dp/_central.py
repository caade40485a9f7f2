"""Central DP: a trusted server sees every update, clips it and adds the noise."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, cast

import numpy as np

from dp._clipping import clip_l2, update_noise_multiplier
from dp._errors import DPValueError
from dp._wrappers import (
    PrivacyWrapper,
    _plain,
    _uniform_count,
    clamp_evaluation,
    install_adaptive_clipper,
)
from secagg import (
    AggregateResult,
    Backend,
    CollectingBackend,
    Config,
    IndividualAggregate,
    Parameters,
    SecureAggregation,
    StrategyWrapper,
)
from secagg._strategy import WEIGHTING_KEY

__all__ = ["CentralFixedClipping", "CentralAdaptiveClipping"]

_REFUSAL = (
    "server-side clipping needs each client's update in the clear, but secure "
    "aggregation shows the server only their sum; a sum cannot be clipped per client, "
    "so no client's influence would be bounded and the noise would give no guarantee. "
    "Use dp.ClientSideFixedClipping or dp.ClientSideAdaptiveClipping under "
    "SecureAggregation (clients clip, the server adds noise to the secure sum)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class CentralFixedClipping(PrivacyWrapper):
    """Central DP with a trusted server: it clips each update and noises the sum.

    Clients send their raw updates in the clear (the ``collect`` backend); the server
    L2-clips each to ``clipping_norm``, sums them with weight 1, adds
    N(0, (noise_multiplier * clipping_norm)^2) per coordinate and hands the noised
    sum to the strategy. Arguments as for :class:`ClientSideFixedClipping`.

    Raises:
        DPValueError: as :class:`ClientSideFixedClipping`, and when the strategy is
            (or wraps) :class:`~secagg.SecureAggregation`.

    Notes:
        - The server sees every update: the guarantee protects clients from whoever
          sees the model, not from the server. Refused under secure aggregation
          (there is nothing to clip); use client-side clipping there.
        - Clients cannot misreport their norm: clipping is enforced by the server,
          which client-side clipping cannot offer.
        - Everything else in :class:`ClientSideFixedClipping`'s notes applies.
    """

    needs_individual_updates: ClassVar[bool] = True
    secure_aggregation_refusal: ClassVar[str] = _REFUSAL

    def __post_init__(self) -> None:
        PrivacyWrapper.__post_init__(self)
        current = self.strategy
        while isinstance(current, StrategyWrapper):
            if isinstance(current, SecureAggregation):
                raise DPValueError(f"{type(self).__name__} cannot wrap SecureAggregation: "
                                   f"{_REFUSAL}")
            current = current.strategy

    def backend(
        self, *, server_round: int, num_clients: int, purpose: str = "fit"
    ) -> Backend | None:
        """The ``collect`` backend: updates in the clear, one by one."""
        return cast(Backend, CollectingBackend())

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        self._check_budget(server_round)
        config = dict(self.strategy.configure_fit(server_round, parameters))
        config[WEIGHTING_KEY] = "uniform"
        return config

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        n = _uniform_count(aggregate, type(self).__name__)
        if n == 0:
            return self.strategy.aggregate_fit(server_round, parameters, aggregate)
        updates = self._updates(aggregate)
        total, clip, multiplier = self._clip_all(updates)
        noised = total + self._noise(total.shape[0], multiplier * clip)
        self._spend(aggregate)
        return self.strategy.aggregate_fit(server_round, parameters, _plain(aggregate, noised))

    def _evaluation_sum(self, aggregate: AggregateResult) -> np.ndarray:
        """The trusted server clamps each client's result itself, then sums."""
        return np.sum([clamp_evaluation(r, loss_bound=self.evaluation_loss_bound,
                                        metric_bound=self.evaluation_metric_bound)
                       for r in self._updates(aggregate)], axis=0)

    def _updates(self, aggregate: AggregateResult) -> list[np.ndarray]:
        if not isinstance(aggregate, IndividualAggregate):
            raise DPValueError(
                f"{type(self).__name__} needs each client's update, but the backend "
                f"delivered only their sum; the coordinator must use the backend that "
                f"backend() returns ({CollectingBackend().name!r})"
            )
        return [aggregate.updates[c] for c in aggregate.contributors]

    def _clip_all(self, updates: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
        clip = float(self.clipping_norm)
        total = np.sum([np.asarray(clip_l2([u], clip=clip).update[0]) for u in updates], axis=0)
        return total, clip, float(self.noise_multiplier)


@dataclasses.dataclass(frozen=True, slots=True)
class CentralAdaptiveClipping(CentralFixedClipping):
    """Central DP whose clip tracks a quantile of the update norms (Andrew et al. 2021).

    The server clips with the current clip, noises the count of unclipped updates
    with ``count_noise_std`` and moves the clip; ``noise_multiplier`` covers the
    round's whole release (see :class:`ClientSideAdaptiveClipping`).

    Notes:
        - As :class:`CentralFixedClipping` (trusted server, refused under secure
          aggregation) and :class:`ClientSideAdaptiveClipping` (the clip is private).
    """

    _: dataclasses.KW_ONLY
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_noise_std: float | None = None

    def __post_init__(self) -> None:
        CentralFixedClipping.__post_init__(self)
        install_adaptive_clipper(self, target_quantile=self.target_quantile,
                                 learning_rate=self.clip_learning_rate, count_noise_std=self.count_noise_std)

    @property
    def current_clipping_norm(self) -> float:
        """The clip applied in the next round."""
        clipper = self._ledger.clipper
        if clipper is None:
            raise DPValueError("the adaptive clipper is missing (construction failed)")
        return float(clipper.clip)

    def _clip_all(self, updates: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
        clipper = self._ledger.clipper
        rng = self._ledger.rng
        if clipper is None or rng is None:
            raise DPValueError("the adaptive clipper is missing (construction failed)")
        result = clipper.step([[u] for u in updates], rng=rng)
        total = np.sum([np.asarray(u[0]) for u in result.updates], axis=0)
        multiplier = update_noise_multiplier(
            noise_multiplier=self.noise_multiplier, count_noise_std=result.count_noise_std
        )
        return total, float(result.clip), float(multiplier)
