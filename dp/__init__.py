"""Differential privacy for federated learning: mechanisms, clipping, accounting.

The core (mechanisms, clipping, accounting) is pure and imports nothing from
:mod:`secagg` or :mod:`transport`.
"""

from dp._accountant import PrivacyAccountant
from dp._analytic import gaussian_delta, gaussian_epsilon
from dp._calibrate import (
    AccountResult,
    Calibration,
    account,
    calibrate_noise,
    epsilon_over_rounds,
    make_accountant,
    max_rounds,
    round_event,
)
from dp._central import CentralAdaptiveClipping, CentralFixedClipping
from dp._client_wrappers import ClientSideAdaptiveClipping, LocalDifferentialPrivacy
from dp._clipping import (
    AdaptiveClipConfig,
    AdaptiveClipper,
    AdaptiveClipResult,
    ClipResult,
    adaptive_clip,
    clip_l2,
    clip_l2_per_layer,
    next_clip,
    update_noise_multiplier,
)

# The strategy wrappers import the Strategy contract from secagg (allowed for wrappers,
# not for the core above): they come last so that the core never depends on them.
from dp._ddp_backend import DistributedDPBackend
from dp._ddp_wrapper import DistributedDP
from dp._distributed import (
    DistributedDPConfig,
    Mechanism,
    conditional_round,
    decode_sum,
    distributed_epsilon,
    distributed_rdp,
    encode_client,
    noise_std_target,
    rounding_std_bound,
    wrap_probability_bound,
)
from dp._distributed_rdp import (
    dgauss_sum_rdp,
    dgauss_sum_rdp_worst,
    rounded_l1_bound,
    rounded_l2_bound,
    skellam_rdp,
)
from dp._errors import (
    BudgetExceededError,
    CalibrationError,
    DPError,
    DPValueError,
    UnsupportedEventError,
)
from dp._events import (
    Composed,
    DiscreteGaussian,
    DPEvent,
    Gaussian,
    Laplace,
    PoissonSampled,
    SampledWithoutReplacement,
    SelfComposed,
    Skellam,
    event_from_json,
    event_to_json,
)
from dp._granularity import choose_gamma
from dp._mechanisms import (
    discrete_gaussian_noise,
    discrete_laplace_noise,
    gaussian_noise,
    laplace_noise,
    secure_generator,
    skellam_noise,
)
from dp._pld import PldAccountant
from dp._rdp import DEFAULT_ORDERS, RdpAccountant, rdp_of, rdp_to_delta, rdp_to_epsilon
from dp._wrappers import ClientSideFixedClipping, PrivacyWrapper

__all__: list[str] = [
    "event_to_json",
    "event_from_json",
    "DistributedDP",
    "DistributedDPBackend",
    "DPError",
    "DPValueError",
    "BudgetExceededError",
    "PrivacyWrapper",
    "ClientSideFixedClipping",
    "ClientSideAdaptiveClipping",
    "LocalDifferentialPrivacy",
    "CentralFixedClipping",
    "CentralAdaptiveClipping",
    "secure_generator",
    "gaussian_noise",
    "laplace_noise",
    "discrete_laplace_noise",
    "discrete_gaussian_noise",
    "skellam_noise",
    "ClipResult",
    "clip_l2",
    "clip_l2_per_layer",
    "AdaptiveClipConfig",
    "AdaptiveClipResult",
    "AdaptiveClipper",
    "adaptive_clip",
    "next_clip",
    "update_noise_multiplier",
    "Mechanism",
    "DistributedDPConfig",
    "encode_client",
    "decode_sum",
    "conditional_round",
    "noise_std_target",
    "rounding_std_bound",
    "wrap_probability_bound",
    "distributed_rdp",
    "distributed_epsilon",
    "choose_gamma",
    "rounded_l2_bound",
    "rounded_l1_bound",
    "dgauss_sum_rdp",
    "dgauss_sum_rdp_worst",
    "skellam_rdp",
    # accounting (dp-acct)
    "UnsupportedEventError",
    "BudgetExceededError",
    "CalibrationError",
    "DPEvent",
    "Gaussian",
    "Laplace",
    "DiscreteGaussian",
    "Skellam",
    "PoissonSampled",
    "SampledWithoutReplacement",
    "SelfComposed",
    "Composed",
    "PrivacyAccountant",
    "RdpAccountant",
    "PldAccountant",
    "DEFAULT_ORDERS",
    "rdp_of",
    "rdp_to_epsilon",
    "rdp_to_delta",
    "gaussian_delta",
    "gaussian_epsilon",
    "AccountResult",
    "Calibration",
    "round_event",
    "make_accountant",
    "account",
    "epsilon_over_rounds",
    "calibrate_noise",
    "max_rounds",
]
