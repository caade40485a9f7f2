"""Client-side adaptive clipping (Andrew et al. 2021) and local DP wrappers."""

from __future__ import annotations

import dataclasses

import numpy as np

from dp._clipping import AdaptiveClipper, update_noise_multiplier
from dp._errors import DPValueError
from dp._events import DPEvent, Gaussian
from dp._wrappers import (
    _CLIP_FLAG,
    _EVAL_CLAMP,
    _EVAL_LOCAL,
    _LOCAL,
    CLIP_NORM_KEY,
    LOCAL_NOISE_KEY,
    PrivacyWrapper,
    _add_transform,
    _plain,
    _uniform_count,
    install_adaptive_clipper,
)
from secagg import AggregateResult, Config, Parameters, evaluation_dim
from secagg._strategy import EXTRA_COORDINATES_KEY, TRANSFORMS_KEY, WEIGHTING_KEY

__all__ = ["ClientSideAdaptiveClipping", "LocalDifferentialPrivacy"]


@dataclasses.dataclass(frozen=True, slots=True)
class ClientSideAdaptiveClipping(PrivacyWrapper):
    """Client-level DP with a clip that tracks a quantile of the update norms.

    Like :class:`ClientSideFixedClipping`, but each client also reports one bit,
    whether its update norm was at most the current clip, as an extra coordinate of
    its (securely aggregated) input. The server noises the count of such clients
    with ``count_noise_std`` and moves the clip geometrically towards the
    ``target_quantile`` of the norms (Andrew, Thakkar, McMahan, Ramaswamy 2021).

    ``noise_multiplier`` is the multiplier of the *whole* round (sum and count
    together): the sum's noise is raised to ``(z^-2 - (2 count_noise_std)^-2)^-1/2``
    so that the round costs exactly one Gaussian mechanism with multiplier ``z``.
    ``clipping_norm`` is the initial clip.

    Args:
        target_quantile: fraction of updates that should fall under the clip.
        clip_learning_rate: step of the geometric clip update (0.2 in the paper).
        count_noise_std: noise on the count; default ``max(m / 20, noise_multiplier)``
            for ``m`` sampled clients (the paper's ``m / 20``, raised so that the
            count never costs more than a quarter of the budget).

    Raises:
        DPValueError: as :class:`ClientSideFixedClipping`, and ``count_noise_std``
            not above ``noise_multiplier / 2`` (the count alone would spend it all).

    Notes:
        - The clip follows the data, so it must be released privately: the count
          costs privacy and is accounted inside ``noise_multiplier``.
        - A low ``target_quantile`` clips most updates (less noise relative to the
          signal, more bias); 0.5 is the paper's robust default.
        - Everything else in :class:`ClientSideFixedClipping`'s notes applies.
    """

    _: dataclasses.KW_ONLY
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_noise_std: float | None = None

    def __post_init__(self) -> None:
        PrivacyWrapper.__post_init__(self)
        install_adaptive_clipper(self, target_quantile=self.target_quantile,
                                 learning_rate=self.clip_learning_rate, count_noise_std=self.count_noise_std)

    @property
    def _clipper(self) -> AdaptiveClipper:
        clipper = self._ledger.clipper
        if clipper is None:
            raise DPValueError("the adaptive clipper is missing (construction failed)")
        return clipper

    @property
    def current_clipping_norm(self) -> float:
        """The clip the clients apply in the next round."""
        return float(self._clipper.clip)

    @property
    def update_noise_multiplier(self) -> float:
        """The multiplier of the noise on the sum of updates (above ``noise_multiplier``)."""
        return float(update_noise_multiplier(
            noise_multiplier=self.noise_multiplier,
            count_noise_std=self._clipper.config.count_noise_std,
        ))

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        self._check_budget(server_round)
        inner = self.strategy.configure_fit(server_round, parameters)
        config = _add_transform(inner, _CLIP_FLAG)
        config[CLIP_NORM_KEY] = self.current_clipping_norm
        config[WEIGHTING_KEY] = "uniform"
        config[EXTRA_COORDINATES_KEY] = int(inner.get(EXTRA_COORDINATES_KEY, 0)) + 1
        return config

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        n = _uniform_count(aggregate, type(self).__name__)
        body = aggregate.weighted_sum[:-1]
        if n == 0:
            return self.strategy.aggregate_fit(server_round, parameters, _plain(aggregate, body))
        clip = self.current_clipping_norm
        noised = body + self._noise(body.shape[0], self.update_noise_multiplier * clip)
        unclipped = int(np.clip(round(float(aggregate.weighted_sum[-1])), 0, n))
        rng = self._ledger.rng
        if rng is None:
            raise DPValueError("the noise generator is missing (construction failed)")
        self._clipper.update(unclipped_count=unclipped, num_clients=n, rng=rng)
        self._spend(aggregate)
        return self.strategy.aggregate_fit(server_round, parameters, _plain(aggregate, noised))


@dataclasses.dataclass(frozen=True, slots=True)
class LocalDifferentialPrivacy(PrivacyWrapper):
    """Local DP: every client clips its update and adds Gaussian noise itself.

    Each client's message is already private before it leaves the device, so
    nobody, the server included, must be trusted with the noise. ``epsilon`` is
    each client's guarantee for what it sends in every round it takes part in
    (adjacency: any change of that client's data, so the sensitivity of one
    message is twice ``clipping_norm``; no amplification by sampling is claimed,
    since a client knows when it is sampled).

    Notes:
        - The mean of ``n`` locally noised updates carries ``sqrt(n)`` times more
          noise than central DP at the same epsilon: local DP costs utility, and
          pays off only with very many clients or a distrusted server.
        - Under :class:`~secagg.SecureAggregation` the server sees only the sum, whose
          noise is ``n`` clients' worth; the reported epsilon still counts one
          client's message (the guarantee that holds even if the sum were not hidden).
        - Client noise must come from a generator the client keeps secret; the client
          runtime passes its generator to the update transform (use
          :func:`dp.secure_generator`).
        - Federated evaluation (``evaluation="noised"``) is local too: each client
          clamps its ``[loss, *metrics]`` and adds Gaussian noise of
          ``evaluation_noise_multiplier`` times its L2 bound before sending it.
    """

    def round_event(self, sample_size: int, population: int | None = None) -> DPEvent:
        return Gaussian(noise_multiplier=self.noise_multiplier / 2.0)

    def evaluation_event(self, sample_size: int) -> DPEvent:
        return Gaussian(noise_multiplier=self.evaluation_multiplier / 2.0)

    def _evaluation_config(self, config: Config) -> dict[str, bool | int | float | str]:
        out = PrivacyWrapper._evaluation_config(self, config)
        out[TRANSFORMS_KEY] = str(out[TRANSFORMS_KEY]).replace(_EVAL_CLAMP, _EVAL_LOCAL)
        sensitivity = self.evaluation_sensitivity(evaluation_dim(out))
        out[LOCAL_NOISE_KEY] = float(self.evaluation_multiplier * sensitivity)
        return out

    def _private_evaluation(self, aggregate: AggregateResult) -> AggregateResult:
        """The clients noised their results; account the release, add nothing."""
        if _uniform_count(aggregate, type(self).__name__) > 0:
            self._spend_evaluation(aggregate)
        return aggregate

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        self._check_budget(server_round)
        config = _add_transform(self.strategy.configure_fit(server_round, parameters), _LOCAL)
        config[CLIP_NORM_KEY] = float(self.clipping_norm)
        config[LOCAL_NOISE_KEY] = float(self.noise_multiplier * self.clipping_norm)
        config[WEIGHTING_KEY] = "uniform"
        return config

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        if _uniform_count(aggregate, type(self).__name__) > 0:
            self._spend(aggregate)
        return self.strategy.aggregate_fit(server_round, parameters, aggregate)

