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
)
from dp._pld import PldAccountant
from dp._rdp import DEFAULT_ORDERS, RdpAccountant, rdp_of, rdp_to_delta, rdp_to_epsilon

__all__: list[str] = [
    # errors
    "DPError", "DPValueError", "UnsupportedEventError", "BudgetExceededError", "CalibrationError",
    # events
    "DPEvent", "Gaussian", "Laplace", "DiscreteGaussian", "Skellam", "PoissonSampled",
    "SampledWithoutReplacement", "SelfComposed", "Composed",
    # accountants
    "PrivacyAccountant", "RdpAccountant", "PldAccountant", "DEFAULT_ORDERS",
    "rdp_of", "rdp_to_epsilon", "rdp_to_delta", "gaussian_delta", "gaussian_epsilon",
    # calibration
    "AccountResult", "Calibration", "round_event", "make_accountant", "account",
    "epsilon_over_rounds", "calibrate_noise", "max_rounds",
]
