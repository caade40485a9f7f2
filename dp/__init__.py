"""Differential privacy for federated learning: mechanisms, clipping, accounting.

The core (mechanisms, clipping, accounting) is pure and imports nothing from
:mod:`secagg` or :mod:`transport`.
"""

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
from dp._errors import DPError, DPValueError
from dp._granularity import choose_gamma
from dp._mechanisms import (
    discrete_gaussian_noise,
    discrete_laplace_noise,
    gaussian_noise,
    laplace_noise,
    secure_generator,
    skellam_noise,
)

__all__: list[str] = [
    "DPError",
    "DPValueError",
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
]
