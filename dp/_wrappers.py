"""Differential privacy around any sum-based strategy: client-side clipping with server
noise, and local DP; the shared privacy ledger and budget. Central DP (a trusted
server clips) is in :mod:`dp._central`.

Every wrapper bounds each *client's* contribution (client-level DP, McMahan et al.
2018): updates are L2-clipped to ``clipping_norm`` and weighted uniformly, so the
sum of updates has sensitivity ``clipping_norm``; Gaussian noise of standard
deviation ``noise_multiplier * clipping_norm`` is added to that sum once per round.

Accounting, per round, through :class:`dp.RdpAccountant` or :class:`dp.PldAccountant`
(``accountant="rdp"`` or ``"pld"``): with every client of the population sampled, a Gaussian mechanism
(adjacency: add or remove one client); with ``m`` of ``N`` sampled, the coordinator
draws a fixed-size sample, so the round is the Gaussian sampled without replacement
(Wang, Balle, Kasiviswanathan 2019; adjacency: replace one client, whose sum
sensitivity is twice the clip, so the event's multiplier is halved). When the
coordinator reports its real sample (:meth:`PrivacyWrapper.fit_sampled`), ``m`` is the
number it sampled, over-selected clients included, and ``N`` the connected clients it
sampled from (at most ``num_clients``).

Budget: with ``epsilon_budget`` set, ``configure_fit`` raises
:class:`dp.BudgetExceededError` *before* a round whose release would take epsilon
past the budget; the coordinator stops training there and keeps the current model.

Federated evaluation releases the clients' losses and metrics, computed on the same
private data, so by default (``evaluation="noised"``) it is a private release too:
every client clamps ``|loss|`` to ``evaluation_loss_bound`` and each ``|metric|`` to
``evaluation_metric_bound`` and weighs its result 1 (the means become means over
clients), the server adds Gaussian noise of ``evaluation_noise_multiplier`` (default:
``noise_multiplier``) times the vector's L2 bound, and the release is accounted in the
same ledger as the updates. ``evaluation="off"`` skips federated evaluation;
``"unprotected"`` runs it as the inner strategy says, outside the guarantee.
Server-side evaluation (``evaluate_fn`` on the server's own data) releases nothing
about the clients and is left alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from dp._accountant import PrivacyAccountant
from dp._calibrate import make_accountant
from dp._clipping import AdaptiveClipConfig, AdaptiveClipper, clip_l2, update_noise_multiplier
from dp._errors import BudgetExceededError, DPValueError
from dp._events import DPEvent, Gaussian, SampledWithoutReplacement, event_from_json, event_to_json
from dp._mechanisms import gaussian_noise, secure_generator
from secagg import (
    AggregateResult,
    Config,
    EvaluateResult,
    EvaluatingStrategy,
    Parameters,
    SamplingStrategy,
    StrategyState,
    StrategyWrapper,
    check_state_type,
    register_update_transform,
)
from secagg._strategy import TRANSFORMS_KEY, WEIGHTING_KEY

__all__ = [
    "PrivacyWrapper",
    "ClientSideFixedClipping",
    "CLIP_NORM_KEY",
    "LOCAL_NOISE_KEY",
    "EVALUATION_LOSS_BOUND_KEY",
    "EVALUATION_METRIC_BOUND_KEY",
    "EVALUATION_MODES",
]

CLIP_NORM_KEY = "blindsum.clip_norm"
LOCAL_NOISE_KEY = "blindsum.local_noise_std"
_CLIP = "blindsum.clip"
_CLIP_FLAG = "blindsum.clip_flag"
_LOCAL = "blindsum.local_gaussian"
EVALUATION_LOSS_BOUND_KEY = "blindsum.evaluation_loss_bound"
EVALUATION_METRIC_BOUND_KEY = "blindsum.evaluation_metric_bound"
_EVAL_CLAMP = "blindsum.evaluation_clamp"
_EVAL_LOCAL = "blindsum.evaluation_local_gaussian"
#: ``evaluation=`` of the DP wrappers: what happens to federated evaluation
EVALUATION_MODES = ("noised", "off", "unprotected")


def _accountant(name: str) -> PrivacyAccountant:
    return make_accountant(name)


class _Ledger:
    """Mutable privacy state of a frozen wrapper: the events spent, the generator, the
    adaptive clipper and the sample the coordinator reported for the running round."""

    __slots__ = ("events", "rounds", "rng", "clipper", "sample")

    def __init__(self) -> None:
        self.events: list[DPEvent] = []  # every release: updates and evaluations
        self.rounds = 0  # training rounds among them
        self.rng: np.random.Generator | None = None
        self.clipper: AdaptiveClipper | None = None
        self.sample: tuple[int, int] | None = None  # (available, sampled)


def _add_transform(config: Config, name: str) -> dict[str, bool | int | float | str]:
    out = dict(config)
    current = str(out.get(TRANSFORMS_KEY, "") or "")
    out[TRANSFORMS_KEY] = f"{current},{name}" if current else name
    return out


def check_privacy_arguments(wrapper: Any) -> None:
    """The arguments every DP wrapper shares: positive finite ``noise_multiplier`` and
    ``clipping_norm``, ``delta`` in (0, 1), a positive ``epsilon_budget`` or none.

    Raises:
        DPValueError: naming the argument and its rule.
    """
    for name in ("noise_multiplier", "clipping_norm"):
        value = getattr(wrapper, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise DPValueError(f"{name} must be finite and > 0, got {value!r}")
    delta, budget = wrapper.delta, wrapper.epsilon_budget
    if not 0.0 < delta < 1.0:
        raise DPValueError(f"delta must be in (0, 1), got {delta!r}")
    if budget is not None and not budget > 0:
        raise DPValueError(f"epsilon_budget must be > 0, got {budget!r}")


def check_evaluation_arguments(wrapper: Any) -> None:
    """``evaluation`` is one of :data:`EVALUATION_MODES`, the evaluation noise multiplier
    is none or positive and finite, the clamp bounds positive and finite.

    Raises:
        DPValueError: naming the argument and its rule.
    """
    if wrapper.evaluation not in EVALUATION_MODES:
        raise DPValueError(f"evaluation must be one of {EVALUATION_MODES}, got {wrapper.evaluation!r}")
    z_eval = wrapper.evaluation_noise_multiplier
    if z_eval is not None and not (isinstance(z_eval, (int, float)) and math.isfinite(z_eval)
                                   and z_eval > 0):
        raise DPValueError(f"evaluation_noise_multiplier must be finite and > 0, got {z_eval!r}")
    for name in ("evaluation_loss_bound", "evaluation_metric_bound"):
        value = getattr(wrapper, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise DPValueError(f"{name} must be finite and > 0, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class PrivacyWrapper(StrategyWrapper):
    """Shared by the DP wrappers: per-round accounting, epsilon so far, the budget.

    Subclasses say what one round releases (:meth:`round_event`) and add noise.
    """

    needs_individual_updates: ClassVar[bool] = False
    #: every client weighs its update 1 (SecureAggregation then quantises for weight 1)
    uniform_weights: ClassVar[bool] = True

    _: dataclasses.KW_ONLY
    noise_multiplier: float
    clipping_norm: float
    num_clients: int
    delta: float = 1e-5
    epsilon_budget: float | None = None
    accountant: str = "rdp"
    rng: np.random.Generator | None = None
    evaluation: str = "noised"
    evaluation_noise_multiplier: float | None = None
    evaluation_loss_bound: float = 10.0
    evaluation_metric_bound: float = 1.0
    _ledger: _Ledger = dataclasses.field(default_factory=_Ledger, init=False, repr=False,
                                         compare=False)

    def __post_init__(self) -> None:
        StrategyWrapper.__post_init__(self)
        check_privacy_arguments(self)
        check_evaluation_arguments(self)
        if int(self.num_clients) < 1:
            raise DPValueError(f"num_clients must be >= 1, got {self.num_clients!r}")
        if getattr(self.strategy, "needs_individual_updates", False):
            raise DPValueError(
                f"{type(self).__name__} adds noise to the sum of updates, but "
                f"{type(self.strategy).__name__} needs individual updates (a noised sum "
                "means nothing to a median); wrap a FedAvg-family strategy"
            )
        current = self.strategy
        while isinstance(current, StrategyWrapper):
            if isinstance(current, PrivacyWrapper):
                raise DPValueError(
                    f"{type(self).__name__} cannot wrap {type(current).__name__}: two DP "
                    "wrappers would clip and noise twice and account separately; use one"
                )
            current = current.strategy
        self._check_accountable(self.round_event(self._sample_size(None)))
        self._ledger.rng = self.rng if self.rng is not None else secure_generator()

    def _check_accountable(self, event: DPEvent) -> None:
        """Refuse, before any round runs, a round the chosen accountant cannot account."""
        if _accountant(self.accountant).supports(event):
            return
        what = (f"samples {event.sample_size} of {event.population_size} clients without "
                "replacement" if isinstance(event, SampledWithoutReplacement) else f"is {event}")
        raise DPValueError(
            f"accountant={self.accountant!r} cannot account a round that {what} (the PLD "
            "accountant has no bound for fixed-size sampling); use accountant='rdp', or "
            "sample every client (fraction_fit=1.0)"
        )

    # -- accounting ---------------------------------------------------------------------
    @property
    def rounds_accounted(self) -> int:
        """Training rounds whose release has been accounted."""
        return self._ledger.rounds

    @property
    def evaluations_accounted(self) -> int:
        """Federated evaluations whose (noised) release has been accounted."""
        return len(self._ledger.events) - self._ledger.rounds

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta` (0 before the first round)."""
        return self._epsilon(self._ledger.events)

    def epsilon_after(self, rounds: int) -> float:
        """Epsilon after ``rounds`` more rounds like the next one (for planning): each
        round's update and, when the strategy evaluates on clients and ``evaluation`` is
        ``"noised"``, its federated evaluation."""
        per_round = [self.round_event(self._sample_size(None))]
        evaluated = self._evaluation_sample_size()
        if evaluated:
            per_round.append(self.evaluation_event(evaluated))
        return self._epsilon(self._ledger.events + per_round * rounds)

    def _epsilon(self, events: list[DPEvent]) -> float:
        if not events:
            return 0.0
        acc = _accountant(self.accountant)
        run, count = events[0], 0
        for event in events:
            if event == run:
                count += 1
                continue
            acc.compose(run, count)
            run, count = event, 1
        acc.compose(run, count)
        return float(acc.get_epsilon(self.delta))

    # -- restart state -------------------------------------------------------------------
    def state_dict(self) -> StrategyState:
        """The privacy spent (events, run-length coded), the adaptive clip if any, and
        the wrapped strategy's state. The noise generator's state is left out."""
        runs: list[list[Any]] = []
        for event in self._ledger.events:
            if runs and runs[-1][0] == event:
                runs[-1][1] += 1
            else:
                runs.append([event, 1])
        clipper = self._ledger.clipper
        return StrategyWrapper.state_dict(self) | {
            "events": [[event_to_json(e), n] for e, n in runs],
            "rounds": self._ledger.rounds,
            "clip": None if clipper is None else float(clipper.clip),
        }

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore :meth:`state_dict`'s state (all of it, or nothing on error).

        Raises:
            ValueError: the state was written by another stack of strategies, or its
                events or clip are malformed (:class:`DPValueError` is a ValueError).
        """
        check_state_type(state, self)
        events: list[DPEvent] = []
        for item in state.get("events", ()):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], int)
                    and item[1] >= 1):
                raise DPValueError(f"privacy ledger entries must be [event, count >= 1], "
                                   f"got {item!r:.80}")
            events += [event_from_json(item[0])] * item[1]
        rounds = state.get("rounds", len(events))  # before evaluations: every event a round
        if not (isinstance(rounds, int) and 0 <= rounds <= len(events)):
            raise DPValueError(f"privacy ledger rounds must be in 0..{len(events)}, got {rounds!r:.40}")
        clip, clipper = state.get("clip"), self._ledger.clipper
        if (clip is None) != (clipper is None):
            raise DPValueError(f"strategy state {'lacks' if clip is None else 'has'} an adaptive "
                               f"clip, but {type(self).__name__} {'has' if clip is None else 'has no'}"
                               " adaptive clipper")
        if clipper is not None and clip is not None:
            AdaptiveClipper(clipper.config).restore(clip)  # validates before anything changes
        StrategyWrapper.load_state_dict(self, state)
        if clipper is not None and clip is not None:
            clipper.restore(clip)
        self._ledger.events = events
        self._ledger.rounds = rounds
        self._ledger.sample = None

    def fit_sampled(self, server_round: int, *, num_available: int, num_sampled: int) -> None:
        """Account this round with the sample the coordinator really drew.

        Raises:
            BudgetExceededError: the round with this sample would exceed the budget.
            DPValueError: ``num_sampled`` is not in ``1..num_available``, or the
                accountant cannot account this sample (PLD and a fixed-size sample).
        """
        if not 1 <= num_sampled <= num_available:
            raise DPValueError(f"num_sampled must be in 1..num_available ({num_available}), "
                               f"got {num_sampled}")
        self._check_accountable(self.round_event(
            num_sampled, population=min(int(num_available), int(self.num_clients))))
        self._ledger.sample = (int(num_available), int(num_sampled))
        StrategyWrapper.fit_sampled(self, server_round, num_available=num_available,
                                    num_sampled=num_sampled)
        if self.epsilon_budget is not None:
            after = self._epsilon(self._ledger.events + [self._sampled_event()])
            if after > self.epsilon_budget:
                raise BudgetExceededError(epsilon=self.epsilon_budget, delta=self.delta,
                                          spent_epsilon=after)

    def _sampled_event(self, contributed: int | None = None) -> DPEvent:
        """The event of the running round: from the coordinator's sample when it reported
        one (population: the clients it sampled from, at most ``num_clients``),
        else from the planned sample."""
        if self._ledger.sample is None:
            return self.round_event(self._sample_size(contributed))
        available, sampled = self._ledger.sample
        return self.round_event(sampled, population=min(available, int(self.num_clients)))

    def _sample_size(self, sampled: int | None) -> int:
        planned = (self.strategy.num_fit_clients(self.num_clients)
                   if isinstance(self.strategy, SamplingStrategy) else self.num_clients)
        return min(max(planned, sampled or 0, 1), self.num_clients)

    def round_event(self, sample_size: int, population: int | None = None) -> DPEvent:
        """What one round releases, as a DP event (see the module docstring): a sample of
        ``sample_size`` out of ``population`` (by default ``num_clients``)."""
        n = int(self.num_clients if population is None else population)
        return _sampled_gaussian(self.effective_noise_multiplier, sample_size, n)

    def evaluation_event(self, sample_size: int) -> DPEvent:
        """What one noised federated evaluation of ``sample_size`` clients releases.

        No amplification by sampling is claimed for evaluations (the coordinator does
        not report the population it drew them from): a sample smaller than
        ``num_clients`` is charged as the unsampled Gaussian under the replace-one
        adjacency of sampled rounds (multiplier halved), everyone as the Gaussian."""
        z = self.evaluation_multiplier
        return Gaussian(noise_multiplier=z if sample_size >= self.num_clients else z / 2.0)

    @property
    def evaluation_multiplier(self) -> float:
        """Noise standard deviation over the evaluation vector's L2 bound."""
        z = self.evaluation_noise_multiplier
        return float(self.noise_multiplier if z is None else z)

    def _evaluation_sample_size(self) -> int:
        """Clients a noised federated evaluation samples each round (0: none)."""
        strategy = self.strategy
        if (self.evaluation != "noised" or not isinstance(strategy, EvaluatingStrategy)
                or not isinstance(strategy, SamplingStrategy)):
            return 0
        return min(max(strategy.num_evaluate_clients(self.num_clients), 0), self.num_clients)

    @property
    def effective_noise_multiplier(self) -> float:
        """Noise standard deviation over sum sensitivity for the whole round's release."""
        return float(self.noise_multiplier)

    def _check_budget(self, server_round: int) -> None:
        if self.epsilon_budget is None:
            return
        after = self.epsilon_after(1)
        if after > self.epsilon_budget:
            raise BudgetExceededError(
                epsilon=self.epsilon_budget, delta=self.delta, spent_epsilon=after
            )

    def _spend(self, aggregate: AggregateResult) -> None:
        sampled = len(aggregate.contributors) + len(aggregate.dropped)
        self._ledger.events.append(self._sampled_event(sampled))
        self._ledger.sample = None
        self._ledger.rounds += 1

    # -- federated evaluation -----------------------------------------------------------
    def configure_evaluate(self, server_round: int, parameters: Parameters) -> Config | None:
        """The inner strategy's evaluate config, made private (see the module docstring).

        With a budget, a noised evaluation that would take epsilon past it is skipped
        (``None``): the model is still valid, only its federated metrics go unreported.
        """
        config = StrategyWrapper.configure_evaluate(self, server_round, parameters)
        if config is None or self.evaluation == "unprotected":
            return config
        if self.evaluation == "off":
            return None
        if self.epsilon_budget is not None:
            event = self.evaluation_event(self._evaluation_sample_size() or self.num_clients)
            if self._epsilon(self._ledger.events + [event]) > self.epsilon_budget:
                return None
        return self._evaluation_config(config)

    def _evaluation_config(self, config: Config) -> dict[str, bool | int | float | str]:
        out = _add_transform(config, _EVAL_CLAMP)
        out[EVALUATION_LOSS_BOUND_KEY] = float(self.evaluation_loss_bound)
        out[EVALUATION_METRIC_BOUND_KEY] = float(self.evaluation_metric_bound)
        out[WEIGHTING_KEY] = "uniform"
        return out

    def aggregate_evaluate(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> EvaluateResult:
        if self.evaluation == "noised":
            aggregate = self._private_evaluation(aggregate)
        return StrategyWrapper.aggregate_evaluate(self, server_round, parameters, aggregate)

    def evaluation_sensitivity(self, dim: int) -> float:
        """L2 bound of one client's clamped ``[loss, *metrics]`` of length ``dim``."""
        return math.hypot(self.evaluation_loss_bound,
                          math.sqrt(max(dim - 1, 0)) * self.evaluation_metric_bound)

    def _private_evaluation(self, aggregate: AggregateResult) -> AggregateResult:
        """Noise the sum of the clients' clamped results and account the release."""
        if _uniform_count(aggregate, type(self).__name__) == 0:
            return aggregate
        total = self._evaluation_sum(aggregate)
        sigma = self.evaluation_multiplier * self.evaluation_sensitivity(total.shape[0])
        noised = total + self._noise(total.shape[0], sigma)
        self._spend_evaluation(aggregate)
        return _plain(aggregate, noised)

    def _evaluation_sum(self, aggregate: AggregateResult) -> np.ndarray:
        return np.asarray(aggregate.weighted_sum, dtype=np.float64)

    def _spend_evaluation(self, aggregate: AggregateResult) -> None:
        sampled = len(aggregate.contributors) + len(aggregate.dropped)
        self._ledger.events.append(self.evaluation_event(min(max(sampled, 1), self.num_clients)))

    def _noise(self, size: int, sigma: float) -> np.ndarray:
        rng = self._ledger.rng
        if rng is None:
            raise DPValueError("the noise generator is missing (construction failed)")
        return gaussian_noise(rng, sigma=sigma, size=size)


def _sampled_gaussian(z: float, sample_size: int, population: int) -> DPEvent:
    """The Gaussian of multiplier ``z`` on everyone, or on ``sample_size`` of ``population``
    drawn without replacement (replace-one adjacency: twice the sensitivity, ``z / 2``)."""
    if sample_size >= population:
        return Gaussian(noise_multiplier=z)
    return SampledWithoutReplacement(population_size=population, sample_size=int(sample_size),
                                     event=Gaussian(noise_multiplier=z / 2.0))


def _uniform_count(aggregate: AggregateResult, who: str) -> int:
    """The number of contributors, checking that they used uniform weights."""
    n = len(aggregate.contributors)
    if abs(aggregate.total_weight - n) > 1e-6 * max(n, 1):
        raise DPValueError(
            f"{who}: total weight {aggregate.total_weight:g} is not the number of "
            f"contributors {n}; the client runtime must honour "
            f"config[{WEIGHTING_KEY!r}] = 'uniform' (see secagg.client_weight)"
        )
    return n


def _clip_norm(config: Config) -> float:
    try:
        clip = float(config[CLIP_NORM_KEY])
    except (KeyError, TypeError, ValueError):
        raise DPValueError(f"config must give a number under {CLIP_NORM_KEY!r}") from None
    return clip


def _clip_transform(update: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """Client side: L2-clip the flat update to ``config["blindsum.clip_norm"]``."""
    return np.asarray(clip_l2([update], clip=_clip_norm(config)).update[0])


def _clip_flag_transform(
    update: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Client side: clip, and append 1.0 if the norm was at most the clip, else 0.0."""
    clip = _clip_norm(config)
    result = clip_l2([update], clip=clip)
    flag = 1.0 if result.norm <= clip else 0.0
    return np.append(np.asarray(result.update[0]), flag)


def clamp_evaluation(vector: np.ndarray, *, loss_bound: float, metric_bound: float
                     ) -> np.ndarray:
    """``[loss, *metrics]`` with ``|loss|`` clamped to ``loss_bound`` and each ``|metric|``
    to ``metric_bound`` (so that one client's result has a known L2 bound)."""
    bounds = np.full(np.shape(vector), float(metric_bound), dtype=np.float64)
    if bounds.size:
        bounds[0] = float(loss_bound)
    return np.clip(np.asarray(vector, dtype=np.float64), -bounds, bounds)


def _evaluation_clamp_transform(
    vector: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Client side: clamp the evaluation vector to the bounds the config gives."""
    try:
        loss_bound = float(config[EVALUATION_LOSS_BOUND_KEY])
        metric_bound = float(config[EVALUATION_METRIC_BOUND_KEY])
    except (KeyError, TypeError, ValueError):
        raise DPValueError(f"config must give numbers under {EVALUATION_LOSS_BOUND_KEY!r} and "
                           f"{EVALUATION_METRIC_BOUND_KEY!r}") from None
    return clamp_evaluation(vector, loss_bound=loss_bound, metric_bound=metric_bound)


def _local_noise(vector: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """``vector`` plus Gaussian noise of ``config["blindsum.local_noise_std"]``."""
    sigma = float(config.get(LOCAL_NOISE_KEY, 0.0))
    return vector + gaussian_noise(rng, sigma=sigma, size=vector.shape)


def _evaluation_local_transform(
    vector: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Client side: clamp, then add the local noise."""
    return _local_noise(_evaluation_clamp_transform(vector, config, rng), config, rng)


def _local_gaussian_transform(
    update: np.ndarray, config: Config, rng: np.random.Generator
) -> np.ndarray:
    """Client side: clip, then add the local noise."""
    return _local_noise(_clip_transform(update, config, rng), config, rng)


register_update_transform(_CLIP, _clip_transform)
register_update_transform(_CLIP_FLAG, _clip_flag_transform)
register_update_transform(_LOCAL, _local_gaussian_transform)
register_update_transform(_EVAL_CLAMP, _evaluation_clamp_transform)
register_update_transform(_EVAL_LOCAL, _evaluation_local_transform)


def install_adaptive_clipper(wrapper: PrivacyWrapper, *, target_quantile: float, learning_rate: float,
                             count_noise_std: float | None) -> None:
    """Give ``wrapper`` an adaptive clipper (Andrew et al. 2021), checking that the noise
    left for the update after the count's share is positive.

    The count noise defaults to ``max(m / 20, z)`` for ``m`` clients per round.

    Raises:
        DPValueError: the count noise takes all of ``noise_multiplier``.
    """
    std = count_noise_std
    if std is None:
        std = max(wrapper._sample_size(None) / 20.0, float(wrapper.noise_multiplier))
    update_noise_multiplier(noise_multiplier=wrapper.noise_multiplier, count_noise_std=std)
    wrapper._ledger.clipper = AdaptiveClipper(AdaptiveClipConfig(
        initial_clip=float(wrapper.clipping_norm), target_quantile=target_quantile,
        learning_rate=learning_rate, count_noise_std=std,
    ))


def _plain(aggregate: AggregateResult, weighted_sum: np.ndarray) -> AggregateResult:
    return AggregateResult(weighted_sum=weighted_sum, total_weight=aggregate.total_weight,
                           contributors=aggregate.contributors, dropped=aggregate.dropped)


@dataclasses.dataclass(frozen=True, slots=True)
class ClientSideFixedClipping(PrivacyWrapper):
    """Client-level DP: clients clip their updates, the server adds noise to the sum.

    Each sampled client L2-clips its update to ``clipping_norm`` and weighs it 1; the
    server adds N(0, (noise_multiplier * clipping_norm)^2) per coordinate to the sum
    (after secure aggregation when wrapped in, or wrapping,
    :class:`~secagg.SecureAggregation`) and hands the noised sum to the strategy,
    which divides by the number of contributors.

    Args:
        strategy: a sum-based strategy (FedAvg family).
        noise_multiplier: noise standard deviation over ``clipping_norm``.
        clipping_norm: L2 bound on each client's flat update.
        num_clients: the population the coordinator samples from (for planning the
            rate; a coordinator's real sample, when reported, takes over).
        delta: the delta at which :attr:`epsilon` is reported.
        epsilon_budget: stop (``configure_fit`` raises
            :class:`~dp.BudgetExceededError`) before a round would exceed it.
        accountant: ``"rdp"`` or ``"pld"`` (tighter, but only when every client
            is sampled: it has no bound for a fixed-size sample).
        rng: generator of the server noise; by default :func:`dp.secure_generator`.

    Raises:
        DPValueError: an argument breaks its rule (named), the strategy needs
            individual updates, or it is already wrapped in a DP wrapper.

    Notes:
        - The server must be trusted to add the noise: it sees the un-noised sum
          (under secure aggregation, only the sum). If it must not, use distributed DP
          (clients add discrete noise under SecAgg+) or local DP.
        - Clipping happens on the clients, so secure aggregation keeps the guarantee;
          the server cannot check that a client clipped. A client that does not clip
          weakens the protection of its own data
          and can spoil the model (clipping is not robustness against poisoning).
        - Noise is independent of the number of clients, so the relative noise in the
          mean falls as ``1 / clients``: client-level DP needs many clients per round.
          Fewer survivors (dropouts) mean a noisier mean, not a weaker guarantee.
        - The number of contributors (and who they are) is treated as public: the
          server sees who connects in any deployment.
        - Federated evaluation is private too by default (``evaluation="noised"``; see
          :mod:`dp._wrappers`): with few clients its metrics are noisy, so pass
          ``evaluation="off"`` and evaluate on the server's own data, or a larger
          ``evaluation_noise_multiplier`` to spend less of the budget on it.
    """

    def configure_fit(self, server_round: int, parameters: Parameters) -> Config:
        self._check_budget(server_round)
        config = _add_transform(self.strategy.configure_fit(server_round, parameters), _CLIP)
        config[CLIP_NORM_KEY] = float(self.clipping_norm)
        config[WEIGHTING_KEY] = "uniform"
        return config

    def aggregate_fit(
        self, server_round: int, parameters: Parameters, aggregate: AggregateResult
    ) -> Parameters:
        if _uniform_count(aggregate, type(self).__name__) == 0:
            return self.strategy.aggregate_fit(server_round, parameters, aggregate)
        sigma = self.noise_multiplier * self.clipping_norm
        noised = aggregate.weighted_sum + self._noise(aggregate.weighted_sum.shape[0], sigma)
        self._spend(aggregate)
        return self.strategy.aggregate_fit(server_round, parameters, _plain(aggregate, noised))
